//! PromQL's `histogram_quantile` over cumulative buckets, so that the builtin provider's
//! `request-duration` equals what the Prometheus provider's query returns for the same
//! requests.

/// The `q` quantile (0..=1) of the observations counted in cumulative `buckets` (upper
/// bound, count), as PromQL computes it: linear interpolation within the bucket the rank
/// falls in, the lowest bucket starting at 0; a rank in the `+Inf` bucket gives the highest
/// finite upper bound. `None` where PromQL answers NaN (no observations, fewer than two
/// buckets, no `+Inf` bucket) or an infinity (`q` outside 0..=1).
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut buckets = buckets.to_vec();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.len() < 2 || buckets.last()?.0 != f64::INFINITY {
        return None;
    }
    // Counts must not go down from one bucket to the next (they may, in a sum of rates
    // over series scraped at different moments); PromQL lifts them to the running maximum.
    let mut max = 0.0f64;
    for (_, count) in &mut buckets {
        max = max.max(*count);
        *count = max;
    }
    let observations = buckets.last()?.1;
    if observations <= 0.0 {
        return None;
    }
    let rank = q * observations;
    let b = buckets.iter().position(|(_, count)| *count >= rank)?;
    if b == buckets.len() - 1 {
        return Some(buckets[b - 1].0);
    }
    let (end, count) = buckets[b];
    if b == 0 && end <= 0.0 {
        return Some(end);
    }
    let (start, below) = if b == 0 { (0.0, 0.0) } else { buckets[b - 1] };
    Some(start + (end - start) * (rank - below) / (count - below))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    #[test]
    fn the_rank_is_interpolated_linearly_within_its_bucket() {
        // 100 observations: 50 up to 10 ms, 40 in (10, 50] ms, 10 in (50, 100] ms.
        let buckets = [(0.01, 50.0), (0.05, 90.0), (0.1, 100.0), (INF, 100.0)];
        // rank 99 is the 9th of 10 in (0.05, 0.1]: 0.05 + 0.05 * 9/10.
        let p99 = histogram_quantile(0.99, &buckets).unwrap();
        assert!((p99 - 0.095).abs() < 1e-12, "{p99}");
        // rank 50 is the last of the first bucket, which starts at 0.
        assert_eq!(histogram_quantile(0.5, &buckets), Some(0.01));
        let p25 = histogram_quantile(0.25, &buckets).unwrap();
        assert!((p25 - 0.005).abs() < 1e-12, "{p25}");
    }

    #[test]
    fn a_rank_beyond_the_highest_finite_bucket_is_that_bucket_s_bound() {
        let buckets = [(0.5, 10.0), (1.0, 10.0), (INF, 20.0)];
        assert_eq!(histogram_quantile(0.99, &buckets), Some(1.0));
    }

    #[test]
    fn buckets_are_sorted_and_made_monotonic_as_promql_does() {
        let buckets = [(INF, 10.0), (0.2, 9.0), (0.1, 10.0)];
        // (0.2, 9) is lifted to 10: every observation is in the first bucket.
        let p50 = histogram_quantile(0.5, &buckets).unwrap();
        assert!((p50 - 0.05).abs() < 1e-12, "{p50}");
    }

    #[test]
    fn what_promql_answers_nan_for_is_none() {
        assert_eq!(histogram_quantile(0.99, &[]), None);
        assert_eq!(histogram_quantile(0.99, &[(INF, 5.0)]), None, "one bucket");
        assert_eq!(
            histogram_quantile(0.99, &[(0.1, 5.0), (1.0, 5.0)]),
            None,
            "no +Inf"
        );
        assert_eq!(
            histogram_quantile(0.99, &[(0.1, 0.0), (INF, 0.0)]),
            None,
            "empty"
        );
        assert_eq!(histogram_quantile(1.5, &[(0.1, 1.0), (INF, 1.0)]), None);
    }
}
