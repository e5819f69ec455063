//! The demo's load: requests to the web app's `/call`, which calls the API through web's
//! proxy, tallied by the status and the version of the API instance that answered.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use http::Method;
use http::uri::{Authority, PathAndQuery};

use crate::demo_app::call::{self, Call};
use crate::demo_app::headers;

/// What a batch of requests got.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Successful answers by the version that served them.
    pub by_version: BTreeMap<String, usize>,
    /// Answers by status code (the API's, as relayed by web).
    pub by_status: BTreeMap<u16, usize>,
    /// Calls that got no answer at all.
    pub failed: usize,
}

impl Tally {
    pub fn total(&self) -> usize {
        self.by_status.values().sum::<usize>() + self.failed
    }

    pub fn ok(&self) -> usize {
        self.by_status
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn status(&self, status: u16) -> usize {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    pub fn version(&self, version: &str) -> usize {
        self.by_version.get(version).copied().unwrap_or(0)
    }

    /// Share of successful answers served by `version`, 0..=1.
    pub fn share(&self, version: &str) -> f64 {
        let ok = self.ok();
        if ok == 0 {
            0.0
        } else {
            self.version(version) as f64 / ok as f64
        }
    }

    pub fn add(&mut self, other: &Tally) {
        for (v, n) in &other.by_version {
            *self.by_version.entry(v.clone()).or_default() += n;
        }
        for (s, n) in &other.by_status {
            *self.by_status.entry(*s).or_default() += n;
        }
        self.failed += other.failed;
    }
}

impl fmt::Display for Tally {
    /// `200 x 180 (v1 90%, v2 10%)`, `403 x 20`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (status, n) in &self.by_status {
            if (200..300).contains(status) && !self.by_version.is_empty() {
                let versions: Vec<String> = self
                    .by_version
                    .iter()
                    .map(|(v, c)| format!("{v} {:.0}%", 100.0 * *c as f64 / self.ok() as f64))
                    .collect();
                parts.push(format!("{status} x {n} ({})", versions.join(", ")));
            } else {
                parts.push(format!("{status} x {n}"));
            }
        }
        if self.failed > 0 {
            parts.push(format!("no answer x {}", self.failed));
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// `n` calls of `method service path` from the web app (at `web`), 8 at a time.
pub async fn drive(web: SocketAddr, method: &str, service: &str, path: &str, n: usize) -> Tally {
    const CONCURRENCY: usize = 8;
    let target = format!("/call?service={service}&path={path}&method={method}");
    let call = Call {
        service: Authority::try_from(web.to_string()).expect("an address is an authority"),
        path: PathAndQuery::try_from(target).expect("a valid path"),
        method: Method::GET,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let call = call.clone();
        let count = n / CONCURRENCY + usize::from(worker < n % CONCURRENCY);
        tasks.spawn(async move {
            let mut tally = Tally::default();
            for _ in 0..count {
                match call::send(&call, None).await {
                    Ok(reply) => {
                        *tally.by_status.entry(reply.status.as_u16()).or_default() += 1;
                        if reply.status.is_success()
                            && let Some(v) = reply
                                .headers
                                .get(headers::VERSION)
                                .and_then(|v| v.to_str().ok())
                        {
                            *tally.by_version.entry(v.to_owned()).or_default() += 1;
                        }
                    }
                    Err(_) => tally.failed += 1,
                }
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(Ok(t)) = tasks.join_next().await {
        total.add(&t);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_shows_statuses_and_the_share_of_each_version() {
        let tally = Tally {
            by_version: [("v1".to_owned(), 45), ("v2".to_owned(), 135)].into(),
            by_status: [(200, 180), (403, 20)].into(),
            failed: 1,
        };
        assert_eq!(tally.total(), 201);
        assert_eq!(tally.ok(), 180);
        assert_eq!(tally.share("v2"), 0.75);
        assert_eq!(
            tally.to_string(),
            "200 x 180 (v1 25%, v2 75%), 403 x 20, no answer x 1"
        );
    }
}
