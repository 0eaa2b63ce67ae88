use clap::Parser;
use portcullis::application::{open_store, Application};
use portcullis::config::{AdminCommand, Cli, Command};
use portcullis::telemetry;
use portcullis_domain::clock::Clock;
use portcullis_domain::model::Role;
use portcullis_domain::secrets::ServerSecret;
use std::io::BufRead;
use std::process::ExitCode;

// At saturation glibc's malloc and free took about 15% of the gateway's CPU (perf);
// mimalloc's per-thread free lists suit a proxy's many small, short-lived allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Admin(AdminCommand::SecretStatus { json, store }) = &cli.command {
        return match secret_status(store, *json).await {
            Ok(true) => ExitCode::SUCCESS,
            // Something still needs the previous secret: scripts wait on this.
            Ok(false) => ExitCode::from(3),
            Err(e) => {
                eprintln!("portcullis: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Admin(AdminCommand::CreateUser { email, role, store }) => create_user(email, role, store).await,
        Command::Admin(AdminCommand::RotateSigningKey { store, activate_in_secs }) => {
            rotate_signing_key(store, activate_in_secs).await
        }
        Command::Admin(AdminCommand::RevokeSigningKey { kid, store }) => revoke_signing_key(kid, store).await,
        Command::Admin(AdminCommand::DisableUser { email, reason, enable, store }) => {
            disable_user(email, reason, !enable, store).await
        }
        Command::Admin(AdminCommand::SuspendClient { client_id, reason, resume, store }) => {
            suspend_client(client_id, reason, !resume, store).await
        }
        Command::Admin(AdminCommand::CreateToken { email, name, days, scopes, store }) => {
            create_token(email, name, days, scopes, store).await
        }
        Command::Admin(AdminCommand::SecretStatus { .. }) => Ok(()),
        Command::SampleUpstream { addr } => sample_upstream(addr).await,
        Command::GenerateSecret => {
            println!("{}", ServerSecret::generate_text());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: portcullis::config::ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init(args.log_json);
    let mut app = Application::build(args.clone(), Clock::system()).await?;
    let url = format!(
        "{}://{}:{}",
        app.scheme(),
        if args.addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { args.addr.ip().to_string() },
        app.port()
    );
    if let Some(seed) = app.take_demo_seed() {
        println!();
        println!("  Portcullis demo is seeded. These are shown once:");
        println!("    admin email     {}", seed.admin_email);
        println!("    admin password  {}", seed.admin_password);
        println!(
            "    demo agent      client {} / profile {}",
            seed.agent_secret.client_id, seed.agent_secret.profile_id
        );
        println!("    agent secret    {}", seed.agent_secret.secret);
        println!();
    }
    println!("  Portcullis is listening on {url}");
    tracing::info!(addr = %url, "listening");
    app.run_until(async {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests and writing queued audit rows");
    })
    .await?;
    Ok(())
}

/// Ctrl-C, or SIGTERM as service managers and container runtimes send it.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn create_user(
    email: String,
    role: String,
    store: portcullis::config::StoreArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let role: Role = role.parse()?;
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    let store = open_store(&store).await?;
    let user = store.create_user(&email, password, role, None, portcullis_domain::access::Channel::Cli).await?;
    println!("created {} ({}) with id {}", user.email, user.role, user.id);
    Ok(())
}

async fn create_token(
    email: String,
    name: String,
    days: i64,
    scopes: Vec<String>,
    store: portcullis::config::StoreArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    use portcullis_domain::access::{Actor, Channel};
    use portcullis_domain::scopes::Scopes;
    let scopes = match scopes.is_empty() {
        true => Scopes::all(),
        false => Scopes::parse(&scopes).map_err(|name| format!("unknown scope {name:?}"))?,
    };
    let store = open_store(&store).await?;
    let user = store.user_by_email(&email).await?.ok_or_else(|| format!("no active account with the email {email}"))?;
    let token = store.create_access_token(&Actor::new(user, Channel::Cli), &name, Some(days), scopes).await?;
    eprintln!("Created token {} ({}, {}); it is shown once:", token.id, token.name, token.scopes.to_column());
    println!("{}", token.token);
    Ok(())
}

async fn rotate_signing_key(
    store: portcullis::config::StoreArgs,
    activate_in_secs: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(&store).await?;
    let kid = store.rotate_signing_key_in("cli", i64::from(activate_in_secs) * 1000).await?;
    println!(
        "signing key {kid} is published and signs from {activate_in_secs} s from now; \
         the previous one verifies the tokens it signed"
    );
    Ok(())
}

/// Whether the previous server secret can be dropped, after printing what needs it.
async fn secret_status(store: &portcullis::config::StoreArgs, json: bool) -> Result<bool, Box<dyn std::error::Error>> {
    use portcullis_domain::time::format_utc;
    let status = open_store(store).await?.secret_status().await?;
    let done = status.waiting.is_empty() && status.signing_keys_on_previous == 0;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(done);
    }
    println!(
        "server secret {} (the store's: {}), previous {}",
        status.current_secret,
        status.store_secret.as_deref().unwrap_or("none yet"),
        status.previous_secret.as_deref().unwrap_or("none given")
    );
    println!("{} live credentials and tokens are keyed with the current secret", status.rekeyed);
    println!("{} signing keys still open only with the previous secret", status.signing_keys_on_previous);
    if status.signing_keys_unopenable > 0 {
        println!("{} signing keys open with neither secret", status.signing_keys_unopenable);
    }
    if status.waiting.is_empty() {
        println!("nothing waits for the previous secret: it can be dropped");
    } else {
        println!(
            "{} live credentials and tokens still need the previous secret; each is re-keyed when next used,              or stops working when the previous secret is dropped (rotate or revoke it instead):",
            status.waiting.len()
        );
        for w in &status.waiting {
            println!(
                "  {}  {:<13}  {}  last used {}  expires {}",
                w.id,
                w.kind,
                w.owner,
                w.last_used_at.map(format_utc).unwrap_or_else(|| "never".into()),
                format_utc(w.expires_at)
            );
        }
    }
    Ok(done)
}

async fn disable_user(
    email: String,
    reason: String,
    disabled: bool,
    store: portcullis::config::StoreArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    use portcullis_domain::access::Authority;
    let store = open_store(&store).await?;
    let id = store.user_id_by_email(&email).await.map_err(|_| format!("no account with the email {email}"))?;
    let account = store.set_user_disabled(Authority::Operator, &id, disabled, &reason).await?;
    let state = if account.disabled { "disabled" } else { "active" };
    println!("{} is {state}; running servers apply it within a second", account.user.email);
    Ok(())
}

async fn suspend_client(
    client_id: String,
    reason: String,
    suspended: bool,
    store: portcullis::config::StoreArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    use portcullis_domain::access::Authority;
    let store = open_store(&store).await?;
    store.set_client_suspended(Authority::Operator, &client_id, suspended, &reason).await?;
    let state = if suspended { "suspended" } else { "resumed" };
    println!("{client_id} is {state}; running servers apply it within a second");
    Ok(())
}

async fn revoke_signing_key(
    kid: String,
    store: portcullis::config::StoreArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(&store).await?;
    match store.revoke_signing_key(&kid, "cli").await {
        Ok(Some(next)) => println!("signing key {kid} is revoked; {next} is current"),
        Ok(None) => println!("signing key {kid} is revoked"),
        Err(portcullis_domain::DomainError::NotFound) => return Err(format!("no usable signing key {kid}").into()),
        Err(e) => return Err(e.into()),
    }
    println!("every token it signed is refused; running servers learn of it within a second");
    Ok(())
}

async fn sample_upstream(addr: std::net::SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("sample upstream listening on http://{}", listener.local_addr()?);
    axum::serve(listener, portcullis::sample_upstream::router::<()>()).await?;
    Ok(())
}
