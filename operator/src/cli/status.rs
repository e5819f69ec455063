//! `trellis status`: fetches `GET /status` from a running operator's admin endpoint and
//! prints it ([`crate::status_view`] does the printing).

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::cli::exit;
use crate::status_view::{self, Format};

/// Where the admin endpoint is when neither --admin nor TRELLIS_ADMIN says.
const DEFAULT_ADMIN: &str = "http://127.0.0.1:9990";
/// The environment variable read when --admin is not given.
const ADMIN_ENV: &str = "TRELLIS_ADMIN";
/// How long connecting, asking and reading the answer may take together.
const TIMEOUT: Duration = Duration::from_secs(5);

const EXAMPLES: &str = "\
Examples:
  trellis status                                   # the operator at http://127.0.0.1:9990
  trellis status --admin http://10.0.0.5:9990      # another operator (its --admin address)
  TRELLIS_ADMIN=http://10.0.0.5:9990 trellis status -o yaml
  trellis status -o json | jq '.resources[] | select(.conditions[0].status == \"False\")'

Table sections: the index revision and counts; SOURCES (errors listed under each source);
RESOURCES (Accepted and ResolvedRefs conditions, file:line, the message of the first
condition that is not True); WORKLOADS (registered proxies' workloads); PROXIES (each
watch of a connected proxy: version sent, whether it was acked, the last NACK).

Exit status: 0 when the operator answered, 2 when it could not be reached or what answered
is not an operator's admin endpoint.";

/// Show what a running operator has: source revisions and errors, every resource with
/// its conditions and file:line, registered workloads, connected proxies.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The operator's admin endpoint: the address given to `trellis operator --admin`
    /// (e.g. --admin http://127.0.0.1:9990; `http://` may be left out). When absent,
    /// TRELLIS_ADMIN, else http://127.0.0.1:9990.
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// Output format: table (aligned sections, for people), json (the /status JSON as
    /// served, e.g. -o json | jq), yaml (the same data as YAML).
    #[arg(short, long, value_name = "FORMAT", value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

impl From<Output> for Format {
    fn from(output: Output) -> Format {
        match output {
            Output::Table => Format::Table,
            Output::Json => Format::Json,
            Output::Yaml => Format::Yaml,
        }
    }
}

pub fn run(args: Args) -> u8 {
    let given = args
        .admin
        .or_else(|| {
            std::env::var(ADMIN_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_ADMIN.to_owned());
    let admin = match AdminUrl::parse(&given) {
        Ok(admin) => admin,
        Err(why) => {
            eprintln!(
                "trellis status: --admin {given:?} is not an admin address: {why}; \
                 use http://HOST:PORT, e.g. {DEFAULT_ADMIN}"
            );
            return exit::USAGE;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let fetched = runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, fetch(&admin))
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Unreachable(format!(
                    "no answer within {}s",
                    TIMEOUT.as_secs()
                )))
            })
    });
    let status = match fetched {
        Ok(status) => status,
        Err(FetchError::Unreachable(why)) => {
            eprintln!(
                "trellis status: cannot reach the operator's admin endpoint at {}: {why}; \
                 is `trellis operator --local` running? Point --admin at its admin address.",
                admin.shown
            );
            return exit::USAGE;
        }
        Err(FetchError::NotAnOperator(why)) => {
            eprintln!(
                "trellis status: {} is not an operator's admin endpoint: {why}; \
                 point --admin at the address given to `trellis operator --admin`.",
                admin.shown
            );
            return exit::USAGE;
        }
    };
    match status_view::render(&status, args.output.into()) {
        Ok(text) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            exit::OK
        }
        Err(e) => {
            eprintln!("trellis status: {e}");
            exit::PROBLEMS
        }
    }
}

/// The admin endpoint, split for a plain HTTP/1 request.
#[derive(Debug, PartialEq, Eq)]
struct AdminUrl {
    /// As messages show it (`http://127.0.0.1:9990`).
    shown: String,
    /// `host:port` to connect to and to send as `Host`.
    authority: String,
    /// The path of the status page (`/status`, under any path prefix given).
    path: String,
}

impl AdminUrl {
    fn parse(given: &str) -> Result<AdminUrl, String> {
        let given = given.trim();
        let with_scheme = if given.contains("://") {
            given.to_owned()
        } else {
            format!("http://{given}")
        };
        let uri: Uri = with_scheme.parse().map_err(|e| format!("{e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "{other}:// is not served; the admin endpoint speaks plain http://"
                ));
            }
            None => return Err("no scheme".into()),
        }
        let authority = uri.authority().ok_or("no host")?;
        let authority = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:80", authority.host()),
        };
        let prefix = uri.path().trim_end_matches('/');
        Ok(AdminUrl {
            shown: with_scheme.trim_end_matches('/').to_owned(),
            authority,
            path: format!("{prefix}/status"),
        })
    }
}

#[derive(Debug)]
enum FetchError {
    /// Nothing answered: no connection, no HTTP answer, no answer in time.
    Unreachable(String),
    /// Something answered, but not with the operator's status JSON.
    NotAnOperator(String),
}

/// `GET /status` over one plain HTTP/1 connection.
async fn fetch(admin: &AdminUrl) -> Result<Value, FetchError> {
    let stream = TcpStream::connect(&admin.authority)
        .await
        .map_err(|e| FetchError::Unreachable(format!("connecting to {}: {e}", admin.authority)))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| FetchError::Unreachable(format!("HTTP handshake: {e}")))?;
    tokio::spawn(connection);
    let request = Request::get(&admin.path)
        .header(header::HOST, &admin.authority)
        .header(header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::NotAnOperator(format!("cannot ask for {}: {e}", admin.path)))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| FetchError::Unreachable(format!("GET {}: {e}", admin.path)))?;
    let code = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| FetchError::Unreachable(format!("reading the answer: {e}")))?
        .to_bytes();
    if code != StatusCode::OK {
        let text = String::from_utf8_lossy(&body);
        let said: String = text.trim().chars().take(200).collect();
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        };
        return Err(FetchError::NotAnOperator(format!(
            "GET {} answered {code}{said}",
            admin.path
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| FetchError::NotAnOperator(format!("GET {} answered no JSON: {e}", admin.path)))
}

#[cfg(test)]
mod tests {
    use super::AdminUrl;

    fn url(given: &str) -> AdminUrl {
        AdminUrl::parse(given).unwrap()
    }

    #[test]
    fn admin_addresses_are_read_as_users_write_them() {
        assert_eq!(
            url("http://127.0.0.1:9990"),
            AdminUrl {
                shown: "http://127.0.0.1:9990".into(),
                authority: "127.0.0.1:9990".into(),
                path: "/status".into(),
            }
        );
        assert_eq!(url("127.0.0.1:9990").shown, "http://127.0.0.1:9990");
        assert_eq!(url("http://ops.example/mesh/").path, "/mesh/status");
        assert_eq!(url("http://ops.example/").authority, "ops.example:80");
        assert_eq!(url("http://[::1]:9990").authority, "[::1]:9990");
        assert!(
            AdminUrl::parse("https://127.0.0.1:9990")
                .unwrap_err()
                .contains("plain http://")
        );
        assert!(AdminUrl::parse("http://").is_err());
    }
}
