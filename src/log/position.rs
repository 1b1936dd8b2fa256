//! Positions in the log: where one record landed, and for a whole read model or a client's
//! read, each partition's next offset, everything before which is included. Written in headers
//! as `partition:offset` pairs, e.g. `0:15,1:7,2:33`.

use crate::domain::shown;
use std::collections::BTreeMap;
use std::fmt;

/// Where one appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    /// The topic partition.
    pub partition: i32,
    /// The record's offset in it.
    pub offset: i64,
}

/// The part of the log a read model reflects, or that a client needs reflected: the next offset
/// of each partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogPosition(BTreeMap<i32, i64>);

impl LogPosition {
    /// The position with these next offsets.
    pub fn from_next_offsets(next_offsets: BTreeMap<i32, i64>) -> Self {
        Self(next_offsets)
    }

    /// This position moved, where needed, past `record`.
    pub fn including(mut self, record: RecordPosition) -> Self {
        let next = self.0.entry(record.partition).or_insert(0);
        *next = (*next).max(record.offset + 1);
        self
    }

    /// The next offset of `partition`: 0 (nothing included) when the position does not name it.
    pub fn next_offset(&self, partition: i32) -> i64 {
        self.0.get(&partition).copied().unwrap_or(0)
    }

    /// The partitions this position names.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.0.keys().copied()
    }

    /// Whether a projection at `next_offsets` includes everything this position includes.
    pub fn is_reached_by(&self, next_offsets: &BTreeMap<i32, i64>) -> bool {
        self.0
            .iter()
            .all(|(partition, &wanted)| next_offsets.get(partition).copied().unwrap_or(0) >= wanted)
    }

    /// Reads the header form. A malformed pair is quoted in the error up to [`PAIR_SHOWN`]
    /// characters.
    ///
    /// # Errors
    /// A sentence saying what is wrong, when `text` is not `partition:offset` pairs separated by
    /// commas, with partitions and offsets ≥ 0 and each partition once. An empty (or blank)
    /// text is the empty position (what an empty log's answers give); an empty item in a list
    /// (`0:1,`) is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut next_offsets = BTreeMap::new();
        if text.trim().is_empty() {
            return Ok(Self(next_offsets));
        }
        for pair in text.split(',').map(str::trim) {
            if pair.is_empty() {
                return Err("holds an empty item (two commas, or one at an end)".to_owned());
            }
            let parsed = pair.split_once(':').and_then(|(partition, offset)| {
                let partition = partition.trim().parse::<i32>().ok().filter(|p| *p >= 0)?;
                let offset = offset.trim().parse::<i64>().ok().filter(|o| *o >= 0)?;
                Some((partition, offset))
            });
            let Some((partition, offset)) = parsed else {
                let quoted = shown(pair, PAIR_SHOWN);
                return Err(format!("{quoted:?} is not partition:offset"));
            };
            if next_offsets.insert(partition, offset).is_some() {
                return Err(format!("partition {partition} is given twice"));
            }
        }
        Ok(Self(next_offsets))
    }
}

/// How much of a malformed pair an error quotes.
pub const PAIR_SHOWN: usize = 40;

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self
            .0
            .iter()
            .map(|(partition, offset)| format!("{partition}:{offset}"))
            .collect();
        f.write_str(&pairs.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_their_header_form() {
        let position = LogPosition::parse("0:15, 2:33,1:7").unwrap();
        assert_eq!(position.to_string(), "0:15,1:7,2:33");
        assert_eq!(LogPosition::parse(&position.to_string()).unwrap(), position);
        assert_eq!(LogPosition::parse("").unwrap(), LogPosition::default());
        for bad in [
            "0", "a:1", "0:-1", "-1:0", "0:1,0:2", "0:1:2", "0:1,", ",0:1", "0:1,,1:2",
        ] {
            assert!(LogPosition::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_position_is_reached_when_every_partition_is() {
        let wanted = LogPosition::parse("0:5,1:3").unwrap();
        assert!(wanted.is_reached_by(&BTreeMap::from([(0, 5), (1, 4), (2, 9)])));
        assert!(!wanted.is_reached_by(&BTreeMap::from([(0, 5), (1, 2)])));
        assert!(!wanted.is_reached_by(&BTreeMap::from([(0, 5)])));
        let nothing_yet = LogPosition::parse("7:0").unwrap();
        assert!(
            nothing_yet.is_reached_by(&BTreeMap::new()),
            "offset 0 asks for nothing"
        );
    }

    #[test]
    fn including_a_record_moves_past_it_only() {
        let position = LogPosition::parse("0:5").unwrap();
        let moved = position.including(RecordPosition {
            partition: 1,
            offset: 3,
        });
        assert_eq!(moved.to_string(), "0:5,1:4");
        let unchanged = moved.including(RecordPosition {
            partition: 0,
            offset: 2,
        });
        assert_eq!(unchanged.to_string(), "0:5,1:4");
    }
}
