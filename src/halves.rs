//! Work on a slice split in two: the second half on a scoped thread, the first on the caller's,
//! for the start-up and replay decoders that nothing else runs beside.

/// `work` applied to each half of `items`, the second half on a thread of its own; the two
/// results in the halves' order. A panic in either half is resumed on the caller's thread.
pub fn map_halves<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> R + Sync) -> [R; 2] {
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|scope| {
        let second = scope.spawn(|| work(second));
        let first = work(first);
        let second = second
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        [first, second]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_half_is_worked_on_once_and_the_results_keep_their_order() {
        let items: Vec<u32> = (0..9).collect();
        let [first, second] = map_halves(&items, <[u32]>::to_vec);
        assert_eq!(first, vec![0, 1, 2, 3]);
        assert_eq!(second, vec![4, 5, 6, 7, 8]);
    }

    #[test]
    fn a_panic_in_the_second_half_reaches_the_caller() {
        let items = [1, 2];
        let caught = std::panic::catch_unwind(|| {
            map_halves(&items, |half| assert!(half != [2], "the second half fails"))
        });
        assert!(caught.is_err());
    }
}
