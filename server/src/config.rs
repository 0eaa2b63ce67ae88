//! Command line and environment. Every flag has a `PORTCULLIS_*` (or `DATABASE_URL`)
//! override so a container or a CI job configures the same things without arguments.

use clap::{Args, Parser, Subcommand};
use portcullis_domain::enforcement::SigningAlg;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about = "API gateway and developer portal for apps and AI agents")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the portal, the gateway and the management API.
    Serve(Box<ServeArgs>),
    /// Operator tasks run against the store.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print a fresh random server secret for PORTCULLIS_SECRET.
    GenerateSecret,
    /// Serve only the demo's sample bank, as a separate upstream (benchmarks use it).
    SampleUpstream {
        #[arg(long, default_value = "127.0.0.1:3900")]
        addr: SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account; the password is read from standard input.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "developer")]
        role: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// What still depends on the previous server secret during a rotation: credentials
    /// and tokens not yet re-keyed (listed), signing keys not yet sealed again. Exits 0
    /// when the previous secret can be dropped, 3 while something still needs it.
    SecretStatus {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Publish a fresh token-signing key, which signs from `--activate-in` seconds later.
    /// The previous key keeps verifying the tokens it signed; running servers publish the
    /// new one within a second, so it is known everywhere before its first token.
    RotateSigningKey {
        /// Seconds between publishing the key and its first signature (0: at once, and a
        /// replica that has not yet heard of it may refuse its first tokens for a second).
        #[arg(long = "activate-in", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=86_400))]
        activate_in_secs: u32,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable an account (or enable it again with --enable): the person can neither sign
    /// in nor use their tokens, and their clients are refused at the gateway.
    DisableUser {
        #[arg(long)]
        email: String,
        /// Kept in the audit trail.
        #[arg(long)]
        reason: String,
        #[arg(long)]
        enable: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Suspend a client (or resume it with --resume): its requests and token requests
    /// are refused; its credentials and grants are kept.
    SuspendClient {
        #[arg(long)]
        client_id: String,
        /// Kept in the audit trail.
        #[arg(long)]
        reason: String,
        #[arg(long)]
        resume: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token-signing key (compromised, say): every token it signed is refused,
    /// by running servers within a second; a fresh key becomes current if it was.
    RevokeSigningKey {
        /// The key's id (`kid` in the JWKS and in token headers).
        #[arg(long)]
        kid: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Create a personal access token for the management API; prints it once.
    CreateToken {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Lifetime in days (1–366).
        #[arg(long, default_value_t = 90)]
        days: i64,
        /// What the token may do, e.g. `--scope clients:write --scope audit:read`;
        /// without it, everything the account's role allows.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Where demo mode keeps its database and generated secret.
    #[arg(long, env = "PORTCULLIS_DATA_DIR", default_value = ".portcullis")]
    pub data_dir: PathBuf,
    /// `sqlite://path.db` or `postgres://…`. Defaults to a SQLite file in the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A file holding the database URL, so that its password stays out of the process
    /// list and the environment.
    #[arg(long, env = "DATABASE_URL_FILE", conflicts_with = "database_url")]
    pub database_url_file: Option<PathBuf>,
    /// The server secret (32+ random characters): keys the hashes of client secrets and
    /// API keys. Required outside demo mode.
    #[arg(long, env = "PORTCULLIS_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// A file holding the server secret (instead of `--secret`).
    #[arg(long, env = "PORTCULLIS_SECRET_FILE", conflicts_with = "secret")]
    pub secret_file: Option<PathBuf>,
    /// During a rotation of the server secret: a file holding the secret being replaced.
    /// What it keyed still verifies and is re-keyed with the current secret when next
    /// used; `portcullis admin secret-status` says when nothing depends on it any more.
    #[arg(long, env = "PORTCULLIS_PREVIOUS_SECRET_FILE")]
    pub previous_secret_file: Option<PathBuf>,
    /// The algorithm of the access-token signing keys made from now on: `EdDSA` (Ed25519,
    /// the default) or `ES256` (ECDSA P-256, for resource servers whose JWT libraries lack
    /// EdDSA). Keys already made keep theirs and keep verifying their tokens; rotate the
    /// signing key (`portcullis admin rotate-signing-key`) to switch at once.
    #[arg(long, env = "PORTCULLIS_TOKEN_SIGNING_ALG", default_value = "EdDSA", value_parser = signing_alg)]
    pub token_signing_alg: SigningAlg,
}

fn signing_alg(text: &str) -> Result<SigningAlg, String> {
    SigningAlg::parse(text).ok_or_else(|| format!("`{text}` is neither EdDSA nor ES256"))
}

impl StoreArgs {
    /// The store's policy numbers, with the signing algorithm chosen here.
    pub fn policy(&self) -> portcullis_domain::store::Policy {
        portcullis_domain::store::Policy { token_signing_alg: self.token_signing_alg, ..Default::default() }
    }
}

/// A trusted proxy: one address (`10.0.0.2`) or a CIDR range (`10.0.0.0/24`).
fn proxy_net(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("neither an IP address nor a CIDR range: {text}"))
}

/// The trimmed contents of a file that holds one secret value, or an error naming it.
pub fn read_value_file(path: &std::path::Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
    Ok(text.trim().to_owned())
}

impl ServeArgs {
    pub fn redis_url(&self) -> std::io::Result<Option<String>> {
        match (&self.redis_url, &self.redis_url_file) {
            (Some(url), _) => Ok(Some(url.clone())),
            (None, Some(file)) => read_value_file(file).map(Some),
            (None, None) => Ok(None),
        }
    }
}

impl StoreArgs {
    pub fn database_url(&self) -> std::io::Result<String> {
        match (&self.database_url, &self.database_url_file) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(file)) => read_value_file(file),
            (None, None) => Ok(format!("sqlite://{}", self.data_dir.join("portcullis.db").display())),
        }
    }

    pub fn demo_secret_file(&self) -> PathBuf {
        self.data_dir.join("demo.secret")
    }

    /// Where audit rows go that could not be written before the process ended; replayed
    /// at the next start.
    pub fn audit_spill_file(&self) -> PathBuf {
        self.data_dir.join("audit-spill.jsonl")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditWhenFull {
    BackPressure,
    FailClosed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditDurability {
    /// An answer leaves once its audit row is queued: a crash loses the queued rows.
    Queued,
    /// An answer leaves once its audit row is committed (group commit): a crash loses none.
    Committed,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PORTCULLIS_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Demo mode: generate a secret if none is given and seed the sample bank.
    #[arg(long, env = "PORTCULLIS_DEMO")]
    pub demo: bool,
    /// The URL people reach Portcullis at. `https://…` marks session cookies `Secure`.
    #[arg(long, env = "PORTCULLIS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The built portal assets (`cargo leptos build` writes them to target/site).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,
    /// How many audit rows may wait for the writer before the gateway reacts.
    #[arg(long, env = "PORTCULLIS_AUDIT_QUEUE", default_value_t = 10_000)]
    pub audit_queue: usize,
    /// When the audit queue is full: wait for room, or refuse with 503.
    #[arg(long, env = "PORTCULLIS_AUDIT_WHEN_FULL", value_enum, default_value_t = AuditWhenFull::BackPressure)]
    pub audit_when_full: AuditWhenFull,
    /// When an answer may leave: once its audit row is queued, or once it is committed.
    #[arg(long, env = "PORTCULLIS_AUDIT_DURABILITY", value_enum, default_value_t = AuditDurability::Queued)]
    pub audit_durability: AuditDurability,
    /// Seconds a stop waits for requests in flight, and then again for the audit writer;
    /// rows still unwritten after that are spilled to a local file and replayed at start.
    #[arg(long = "shutdown-timeout", env = "PORTCULLIS_SHUTDOWN_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub shutdown_timeout_secs: u64,
    /// Seconds an upstream may take to answer (headers) before the gateway answers 504.
    #[arg(long = "upstream-timeout", env = "PORTCULLIS_UPSTREAM_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub upstream_timeout_secs: u64,
    /// Seconds between two fetches of one trusted issuer's JWKS at least. A token naming
    /// a key the cached set lacks makes the server fetch again (the issuer may have
    /// rotated), no more often than this: a flood of made-up key ids costs the issuer one
    /// fetch per interval.
    #[arg(long = "issuer-jwks-min-interval", env = "PORTCULLIS_ISSUER_JWKS_MIN_INTERVAL", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub issuer_jwks_min_interval_secs: u64,
    /// Token requests per minute one client may make (an IP: ten times as many). Clients
    /// keep a token for its lifetime, so a few a minute is plenty; benchmarks lift it.
    #[arg(long, env = "PORTCULLIS_TOKEN_RATE_LIMIT", default_value_t = 30)]
    pub token_rate_limit: u32,
    /// Requests per second the whole gateway accepts (0: no gateway-wide limit; each
    /// profile and product still has its own).
    #[arg(long, env = "PORTCULLIS_GLOBAL_RATE_LIMIT", default_value_t = 0)]
    pub global_rate_limit: u32,
    /// Days a signing key signs before the server rotates it (checked hourly).
    #[arg(long, env = "PORTCULLIS_SIGNING_KEY_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=365))]
    pub signing_key_days: u32,
    /// Days audit rows are kept; older rows are purged in batches (checked hourly), and
    /// each purge is itself recorded.
    #[arg(long, env = "PORTCULLIS_AUDIT_RETENTION_DAYS", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub audit_retention_days: u32,
    /// Refused requests per minute one address may earn before it is turned away at the
    /// door for a while (429), its further refusals counted instead of written one by
    /// one; 0 turns this off.
    #[arg(long, env = "PORTCULLIS_SOURCE_REFUSAL_LIMIT", default_value_t = 600)]
    pub source_refusal_limit: u32,
    /// Bytes of request body the gateway forwards at most (413 beyond).
    #[arg(long, env = "PORTCULLIS_MAX_BODY", default_value_t = 10 * 1024 * 1024)]
    pub max_body: u64,
    /// Seconds a client may take to send a request's headers before its connection is
    /// closed (slow clients hold no connection for long).
    #[arg(long = "header-read-timeout", env = "PORTCULLIS_HEADER_READ_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_read_timeout_secs: u64,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "PORTCULLIS_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Proxies (addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For` names
    /// the client: per-address limits and audit rows use it. Nobody else is believed.
    #[arg(long, env = "PORTCULLIS_TRUSTED_PROXIES", value_delimiter = ',', value_parser = proxy_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// PEM file of certificate authorities trusted for https upstreams, beside the
    /// system's (private PKI). Hostnames are verified whatever is trusted.
    #[arg(long, env = "PORTCULLIS_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<std::path::PathBuf>,
    /// PEM certificate (chain) presented to upstreams that require a client certificate.
    #[arg(long, env = "PORTCULLIS_UPSTREAM_CLIENT_CERT", requires = "upstream_client_key")]
    pub upstream_client_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--upstream-client-cert`.
    #[arg(long, env = "PORTCULLIS_UPSTREAM_CLIENT_KEY", requires = "upstream_client_cert")]
    pub upstream_client_key: Option<std::path::PathBuf>,
    /// A directory of named upstream TLS profiles, which products choose by name: each
    /// subdirectory `<name>/` holds `ca.pem` (roots trusted beside the system's) and/or
    /// `client.pem` with `client.key` (presented to upstreams requiring mutual TLS).
    /// Products that name none use the three flags above.
    #[arg(long, env = "PORTCULLIS_UPSTREAM_TLS_DIR")]
    pub upstream_tls_dir: Option<std::path::PathBuf>,
    /// PEM certificate (a chain: the server's first, then intermediates) for serving
    /// https on `--addr`. Without it the listener speaks plain http (behind a load
    /// balancer that terminates TLS). Re-read on SIGHUP and when the file changes.
    #[arg(long, env = "PORTCULLIS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "PORTCULLIS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// PEM file of certificate authorities whose client certificates the https listener
    /// accepts. A certificate is asked for, not required; one that does not verify ends
    /// the handshake. One that verifies authenticates a client that registered its
    /// subject (`tls_client_auth`) or its key.
    #[arg(long, env = "PORTCULLIS_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// Ask https clients for a certificate and accept any, self-signed too, whose
    /// handshake proves its key (RFC 8705): tokens obtained over it are bound to it, and
    /// it authenticates a client whose registered public key it carries
    /// (`self_signed_tls_client_auth`). Not with `--tls-client-ca`.
    #[arg(long, env = "PORTCULLIS_TLS_SELF_SIGNED_CLIENTS", requires = "tls_cert", conflicts_with = "tls_client_ca")]
    pub tls_self_signed_clients: bool,
    /// Believe the RFC 9440 `Client-Cert` header from `--trusted-proxies`: a load
    /// balancer that ends TLS, checked the client's certificate and sets (or removes)
    /// this header on every request. From anyone else it is ignored. Off by default.
    #[arg(long, env = "PORTCULLIS_TRUST_CLIENT_CERT_HEADER", requires = "trusted_proxies")]
    pub trust_client_cert_header: bool,
    /// Where to serve Prometheus metrics (`/metrics`), e.g. `127.0.0.1:9464`: a
    /// listener of its own, never the public port. Off unless given.
    #[arg(long, env = "PORTCULLIS_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Redis (`redis://…` or `rediss://…`) where rate limits are counted across
    /// replicas. Without it each replica counts its own. When Redis cannot answer, each
    /// replica counts its own until it can (and `/readyz` says why).
    #[arg(long, env = "PORTCULLIS_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// A file holding the Redis URL (its password stays out of the process list).
    #[arg(long, env = "PORTCULLIS_REDIS_URL_FILE", conflicts_with = "redis_url")]
    pub redis_url_file: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "PORTCULLIS_LOG_JSON")]
    pub log_json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let cli = Cli::try_parse_from(["portcullis", "serve", "--trusted-proxies", "127.0.0.1,10.0.0.0/24,::1"])
            .expect("parses");
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let nets: Vec<String> = args.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["127.0.0.1/32", "10.0.0.0/24", "::1/128"]);
        assert!(Cli::try_parse_from(["portcullis", "serve", "--trusted-proxies", "proxy.internal"]).is_err());
    }
}
