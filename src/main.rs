//! The `caje` command: run a node (the embedded demo when no config is
//! given), check a config file, or use a node's admin API (`caje admin`).

use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use caje::admin_cli::{self, AdminArgs};
use caje::config::{Origin, Settings, ADMIN_TOKEN_ENV};
use caje::startup::{Application, Stopped};
use caje::telemetry::{self, LogFormat};

/// A caching CDN node.
#[derive(Parser)]
#[command(name = "caje", version, about)]
struct Cli {
    /// Config file (TOML). Without one, caje runs the embedded demo.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where the demo's slow server listens (the demo only; port 0 picks a
    /// free port). caje itself listens on `CAJE_LISTEN`.
    #[arg(long, env = "CAJE_DEMO_ORIGIN", default_value = DEMO_ORIGIN)]
    demo_origin: String,
    /// Log format: text for people, json for machines.
    #[arg(long, env = "CAJE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and exit: 0 when valid, 2 with the reason when not.
    CheckConfig { file: PathBuf },
    /// Run only the demo's slow origin (for a local cluster or a browser test).
    DemoOrigin {
        /// Address to listen on; port 0 picks a free port (announced on stdout).
        #[arg(long, default_value = DEMO_ORIGIN)]
        listen: String,
    },
    /// Use a node's admin API: list, purge, populate, clear-cache, reload, health.
    /// The token comes from CAJE_ADMIN_TOKEN. Exit codes: 0 done, 1 the node
    /// refused or failed, 2 usage, 3 the node could not be reached, 4 no token.
    Admin(AdminArgs),
}

/// Where the demo's slow server listens.
const DEMO_ORIGIN: &str = "127.0.0.1:3000";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        match Settings::load(file) {
            Ok(settings) => {
                println!(
                    "{}: ok, {} origin(s), listening on {}",
                    file.display(),
                    settings.origins.len(),
                    settings.listen
                );
                return Ok(());
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        }
    }
    if let Some(Command::Admin(args)) = &cli.command {
        admin(args);
    }
    let _log = telemetry::init(cli.log_format);
    if let Some(Command::DemoOrigin { listen }) = &cli.command {
        return actix_web::rt::System::new().block_on(serve_demo_origin(listen));
    }
    actix_web::rt::System::new().block_on(serve(cli.config, &cli.demo_origin))
}

/// Runs one admin command and exits with its code: the answer on stdout,
/// why it failed on stderr.
fn admin(args: &AdminArgs) -> ! {
    let token = admin_cli::token_from_env();
    let done = actix_web::rt::System::new().block_on(admin_cli::run(args, token));
    match done {
        Ok(text) => {
            print!("{text}");
            std::process::exit(admin_cli::exit::OK);
        }
        Err(e) => {
            eprintln!("caje admin: {e}");
            std::process::exit(e.exit_code());
        }
    }
}

/// Serves until SIGINT or SIGTERM, then exits 0.
async fn serve_demo_origin(listen: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("the demo origin cannot listen on {listen}"))?;
    let port = listener.local_addr()?.port();
    let origin = caje::demo_origin::run(listener, true)?;
    announce_demo_origin(port);
    origin.await?;
    Ok(())
}

async fn serve(config: Option<PathBuf>, demo_origin: &str) -> anyhow::Result<()> {
    let Some(path) = config else {
        return serve_demo(demo_origin).await;
    };
    let settings = Settings::load(&path)?;
    let app = Application::build_reloadable(settings, path).await?;
    caje::reload::on_sighup(app.reloader()).context("cannot listen for SIGHUP")?;
    announce(app.port());
    app.run_until_stopped().await?;
    Ok(())
}

/// The no-set-up run: the slow server on :3000 and caje on :3001 in front
/// of it, until SIGINT or SIGTERM stops both; then it exits 0.
async fn serve_demo(demo_origin: &str) -> anyhow::Result<()> {
    let origin_listener = TcpListener::bind(demo_origin)
        .with_context(|| format!("the demo's slow server needs {demo_origin}"))?;
    let origin_addr = origin_listener.local_addr()?;
    // Stopped once caje has (below), not on the signal: actix-web's own
    // handling would stop every arbiter, caje's cache store's too, before
    // the store wrote its index snapshot.
    let origin = caje::demo_origin::run(origin_listener, false)?;
    let mut settings = Settings::with_origins(vec![Origin::new(
        "localhost",
        format!("http://{origin_addr}"),
    )]);
    settings.apply_env(|var| std::env::var(var).ok())?;
    let token = match settings.admin_token.clone() {
        Some(_) => format!("(from {ADMIN_TOKEN_ENV})"),
        None => {
            let token = generate_token();
            settings.admin_token = Some(token.clone());
            token
        }
    };
    let app = Application::build(settings).await?;
    let port = app.port();
    announce_demo_origin(origin_addr.port());
    announce(port);
    println!();
    println!("caje demo: the slow server is on http://{origin_addr} (/ at once, /fast in 1 s, /slow in 5 s)");
    println!("try, twice each:");
    for path in ["/fast", "/slow"] {
        println!("  curl -i http://localhost:{port}{path}");
    }
    println!("admin token: {token}  (set {ADMIN_TOKEN_ENV} to choose your own)");
    let stop_origin = origin.handle();
    let (served, origin_stopped) = futures_util::future::join(
        async {
            let served = app.run_until_stopped().await;
            // The origin stops once caje has, as caje did: Ctrl-C drops
            // its answers in flight too (`/slow` would hold the exit 5 s).
            let graceful = matches!(served, Ok(Stopped::Gracefully));
            stop_origin.stop(graceful).await;
            served.map(|_| ())
        },
        origin,
    )
    .await;
    served?;
    origin_stopped?;
    Ok(())
}

/// The line scripts and tests wait for to find the demo origin.
fn announce_demo_origin(port: u16) {
    println!("demo origin listening on port {port}");
}

/// The line scripts and tests wait for.
fn announce(port: u16) {
    println!("caje listening on port {port}");
}

fn generate_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
