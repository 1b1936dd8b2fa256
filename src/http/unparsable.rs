//! Problem documents for requests the HTTP library itself refuses.
//!
//! hyper answers a request it cannot parse (a broken request line or header, a `Content-Length`
//! that is not a number or is given twice with different values, a head larger than the
//! server's buffer, an over-long URI) by itself, before any route runs: a 400, 431 or 414 with
//! an empty body, then it closes the connection. It offers no hook for that answer, so the
//! connection's write side is wrapped: exactly that answer (one of those statuses, with
//! `content-length: 0` and no `content-type`, which no route of this API ever sends) is replaced
//! by the same status with an `application/problem+json` body. Every other byte passes through
//! untouched.

use super::problem::{ProblemFields, ProblemType};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose automatic error answers become problem documents.
pub struct ProblemAnswers<S> {
    inner: S,
    replacing: Option<Replacement>,
    head: HeadScan,
}

/// What the connection's first request head looked like as it was read, to tell why hyper
/// found it too large: a request line that never ended (an over-long URI, 414), too many
/// header lines (over hyper's 100), or too many bytes. Later requests of a keep-alive
/// connection are not scanned: their oversize answers say "too large".
#[derive(Debug, Default, Clone, Copy)]
struct HeadScan {
    /// Line ends read so far in the first head.
    line_ends: usize,
    /// The first head ended (a blank line was read).
    done: bool,
    /// The last bytes read, to find `\r\n\r\n` across reads.
    tail: [u8; 3],
}

/// Header lines hyper reads in one head; past this, it answers 431.
const MAX_HEADERS: usize = 100;

impl HeadScan {
    fn read(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.done {
                return;
            }
            if byte == b'\n' {
                self.line_ends += 1;
                // `\r\n\r\n`, or a bare `\n\n`: the blank line that ends the head.
                if self.tail == *b"\r\n\r" || self.tail[2] == b'\n' {
                    self.done = true;
                }
            }
            self.tail = [self.tail[1], self.tail[2], byte];
        }
    }

    /// Why the head was too large.
    fn oversize(&self) -> Oversize {
        match (self.done, self.line_ends) {
            (false, 0) => Oversize::Uri,
            // The request line and the blank line end lines too.
            (_, lines) if lines > MAX_HEADERS + 2 => Oversize::HeaderCount,
            _ => Oversize::Bytes,
        }
    }
}

/// Why hyper refused a head as too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Oversize {
    /// The request line never ended within the buffer: its URI is too long (414).
    Uri,
    /// More header lines than hyper reads.
    HeaderCount,
    /// More bytes than the buffer holds.
    Bytes,
}

/// An answer being written in place of hyper's.
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    /// How many bytes of hyper's answer it stands for: what the write reports once it is done.
    replaces: usize,
}

impl<S> ProblemAnswers<S> {
    /// Wraps an accepted connection.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            replacing: None,
            head: HeadScan::default(),
        }
    }
}

impl<S: AsyncWrite + Unpin> ProblemAnswers<S> {
    /// Writes what is left of the replacement; ready with the length it stands for once done.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(replacement) = self.replacing.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while replacement.written < replacement.bytes.len() {
            let rest = &replacement.bytes[replacement.written..];
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            replacement.written += written;
        }
        let replaces = replacement.replaces;
        self.replacing = None;
        Poll::Ready(Ok(replaces))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemAnswers<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if !self.head.done {
            let read = &buf.filled()[before..];
            self.head.read(read);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemAnswers<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_none() {
            if let Some(problem) = problem_for(buf, self.head.oversize()) {
                self.replacing = Some(Replacement {
                    bytes: problem,
                    written: 0,
                    replaces: buf.len(),
                });
            } else {
                return Pin::new(&mut self.inner).poll_write(cx, buf);
            }
        }
        self.poll_replacement(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper writes a head as one slice of its own.
        let first = bufs.iter().find(|buf| !buf.is_empty());
        let oversize = self.head.oversize();
        if self.replacing.is_some()
            || first.is_some_and(|first| problem_for(first, oversize).is_some())
        {
            let first = first.map_or(&[][..], |first| &first[..]);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The problem answer standing for `written`, when `written` is hyper's own answer to a request
/// it could not parse.
fn problem_for(written: &[u8], oversize: Oversize) -> Option<Vec<u8>> {
    // Most writes are bodies or ordinary heads: a cheap look at the start settles them.
    if !written.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let head = std::str::from_utf8(written).ok()?;
    let head = head.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next()?;
    let mut status = status_line.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    if status == "431" && oversize == Oversize::Uri {
        status_line = "HTTP/1.1 414 URI Too Long";
        status = "414";
    }
    let (kind, detail) = match status {
        "400" => (
            ProblemType::MalformedRequest,
            "the request is not well-formed HTTP/1.1: its request line, a header, or its \
             Content-Length (not a number, or given twice with different values)",
        ),
        "414" => (
            ProblemType::UriTooLong,
            "the request's URI is longer than this server reads",
        ),
        "431" if oversize == Oversize::HeaderCount => (
            ProblemType::RequestHeadTooLarge,
            "the request has more than 100 header fields",
        ),
        "431" => (
            ProblemType::RequestHeadTooLarge,
            "the request line and headers together are larger than 16384 bytes",
        ),
        _ => return None,
    };
    let headers: Vec<&str> = lines.collect();
    let is_header = |name: &str| {
        headers.iter().any(|line| {
            line.split_once(':')
                .is_some_and(|(header, _)| header.trim().eq_ignore_ascii_case(name))
        })
    };
    let empty = headers.iter().any(|line| {
        line.split_once(':').is_some_and(|(header, value)| {
            header.trim().eq_ignore_ascii_case("content-length") && value.trim() == "0"
        })
    });
    if !empty || is_header("content-type") {
        return None;
    }
    let fields = ProblemFields {
        problem_type: kind.uri(),
        title: kind.title(),
        status: kind.status().as_u16(),
        detail,
    };
    let body = serde_json::to_string(&fields).expect("a problem always serialises");
    let date = headers
        .iter()
        .find(|line| line.to_ascii_lowercase().starts_with("date:"))
        .map(|line| format!("{line}\r\n"))
        .unwrap_or_default();
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\
             connection: close\r\n{date}\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_scanned_for_why_it_was_too_large() {
        let scan = |chunks: &[&[u8]]| {
            let mut head = HeadScan::default();
            for chunk in chunks {
                head.read(chunk);
            }
            head.oversize()
        };
        assert_eq!(scan(&[b"GET /aaaa", b"aaaa"]), Oversize::Uri);
        let many = "X: 1\r\n".repeat(102);
        assert_eq!(
            scan(&[b"GET / HTTP/1.1\r\n", many.as_bytes()]),
            Oversize::HeaderCount
        );
        assert_eq!(scan(&[b"GET / HTTP/1.1\r\nX: aaaa"]), Oversize::Bytes);
        // A head that ended, then a body full of line ends: the head was not the problem.
        assert_eq!(
            scan(&[b"PUT / HTTP/1.1\r\nHost: x\r", b"\n\r\n", many.as_bytes()]),
            Oversize::Bytes
        );
        let uri_answer =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let replaced = String::from_utf8(problem_for(uri_answer, Oversize::Uri).unwrap()).unwrap();
        assert!(
            replaced.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{replaced}"
        );
        assert!(replaced.contains("/problems/uri-too-long"));
    }

    #[test]
    fn only_hypers_own_error_answers_are_replaced() {
        let automatic = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Fri, 27 Nov 2026 12:00:00 GMT\r\n\r\n";
        let replaced = String::from_utf8(problem_for(automatic, Oversize::Bytes).unwrap()).unwrap();
        let (head, body) = replaced.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("content-type: application/problem+json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("date: Fri, 27 Nov 2026"));
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 431);
        assert_eq!(problem["type"], "/problems/request-head-too-large");

        for untouched in [
            // An answer of the API: it has a body and a content type.
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            // Body bytes, not a head.
            b"{\"type\":\"/problems/x\"}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nextra",
        ] {
            assert_eq!(
                problem_for(untouched, Oversize::Bytes),
                None,
                "{:?}",
                String::from_utf8_lossy(untouched)
            );
        }
    }
}
