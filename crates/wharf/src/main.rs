//! `wharf`: the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wharf::admin::{self, AdminCommand};
use wharf::agent_cli::{self, AgentArgs};
use wharf::config::{LogFormat, ServeArgs, Settings, StoreArgs};
use wharf::jq_cli::{self, JqArgs, RenderArgs};
use wharf::server::{Server, open_store};

/// mimalloc instead of the system allocator: Wharf allocates many small JSON values (jq
/// inputs and outputs, request bodies), where glibc's malloc spent a third of `wharf jq`'s time.
///
/// Wrapped in `CountingAlloc`, which counts what each thread allocates so that a jq
/// evaluation's budget can limit its memory (SPEC §12).
#[global_allocator]
static ALLOCATOR: wharf_jq::CountingAlloc<mimalloc::MiMalloc> = wharf_jq::CountingAlloc(mimalloc::MiMalloc);

/// Wharf: a self-hosted webhook engine with Port-compatible APIs.
#[derive(Debug, Parser)]
#[command(name = "wharf", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (migrates the database first)
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit
    Migrate(StoreArgs),
    /// Run a jq filter as Wharf runs it (Port's single quotes, Wharf's builtins), like the jq CLI
    Jq(JqArgs),
    /// Render a JSON template with Port's `{{ … }}` semantics against a context, or (--action) the
    /// request a run of an action would send
    Render(RenderArgs),
    /// Run Wharf's execution agent inside a private network: claim the runs of actions with
    /// `agent: true`, send their requests from there, report the results (Port's agent, polling)
    Agent(Box<AgentArgs>),
    /// Copy the SQLite database to FILE, consistent while Wharf serves it (SQLite's online
    /// backup: the database as of one commit); keep the master key with it
    Backup(BackupArgs),
    /// Manage organizations and API clients
    Admin {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("WHARF_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A failure is one line on stderr, `error: what: why` (each cause once, no backtrace), and
/// exit status 1.
#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, joined by `: `, leaving out a cause whose words the
/// line already holds (a library's error often repeats its source's).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(args) => {
            init_logging(LogFormat::Text);
            let settings = Settings::for_store(&args)?;
            let store = open_store(&settings).await?;
            // A SQLite database has one server, which migrates it as it starts: never migrated
            // under a running one (an older server would go on against the newer schema).
            let serving = match store.serve_alone() {
                Ok(serving) => serving,
                Err(err) => {
                    store.close().await;
                    return Err(match err {
                        wharf_store::Error::InUse(lock) => anyhow::anyhow!(
                            "a `wharf serve` is serving this SQLite database (it holds {lock}): stop it before \
                             migrating (a server migrates its database as it starts)"
                        ),
                        other => anyhow::Error::new(other).context("cannot take the SQLite database's server lock"),
                    });
                }
            };
            let migrated = store.migrate().await.context("migration failed");
            drop(serving);
            store.close().await;
            migrated?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Jq(args) => std::process::exit(jq_cli::jq(args)),
        Command::Render(args) => std::process::exit(jq_cli::render(args)),
        Command::Agent(args) => agent(*args).await,
        Command::Backup(args) => backup(args).await,
        Command::Admin { store, command } => {
            init_logging(LogFormat::Text);
            admin::run(&store, command).await
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::for_serve(&args)?;
    init_logging(settings.log_format);
    let server = Server::start(&settings).await?;
    if let Some(credentials) = &server.bootstrap {
        // Shown once, on the terminal only (never through the log pipeline).
        eprintln!(
            "\nCreated organization {} with an admin API client:\n  clientId:     {}\n  clientSecret: {}\n(also written to {} with mode 0600)\n",
            credentials.organization_id,
            credentials.client_id,
            credentials.client_secret,
            settings.data_dir.join("credentials.json").display()
        );
    }
    let public_url = settings.public_url_at(server.addr());
    eprintln!("Console: {public_url}/ (sign in with an API client's id and secret)");
    tracing::info!(listen = %server.addr(), public_url = %public_url, "wharf is serving");
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await
}

/// `wharf backup FILE`'s arguments.
#[derive(Debug, clap::Args)]
#[command(after_long_help = BACKUP_HELP)]
struct BackupArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The file to write: it must not exist (the copy is written beside it, then renamed)
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

const BACKUP_HELP: &str = "\
The copy is the database as of one commit, taken while Wharf serves (SQLite's WAL lets writers
go on), checked with PRAGMA integrity_check. It does not hold the master key
(<data-dir>/master.key, or WHARF_MASTER_KEY), which seals the secrets and signs the tokens in
it: keep the key with the backup, apart from it.

Restore: stop Wharf, move <data-dir>/wharf.db, wharf.db-wal and wharf.db-shm away, copy FILE
to <data-dir>/wharf.db, put the master key back, start Wharf.

PostgreSQL: back up with pg_dump (or the provider's snapshots); this command copies SQLite.";

async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let settings = Settings::for_store(&args.store)?;
    if settings.database_url.is_some() {
        anyhow::bail!("wharf backup copies Wharf's SQLite database; with PostgreSQL (--database-url), back it up with pg_dump");
    }
    let source = settings.data_dir.join("wharf.db");
    let target = args.file.clone();
    let report = tokio::task::spawn_blocking(move || wharf_store::backup_sqlite(&source, &target))
        .await
        .context("the backup stopped")?
        .with_context(|| format!("cannot back up {}", settings.data_dir.join("wharf.db").display()))?;
    eprintln!(
        "backed up {} to {} ({} pages, {} bytes); keep the master key with it",
        settings.data_dir.join("wharf.db").display(),
        args.file.display(),
        report.pages,
        report.bytes
    );
    Ok(())
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let agent = agent_cli::agent(args)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping the agent");
        stopping.cancel();
    });
    agent.run(stop).await?;
    // Exits now: returning would drop the runtime, which waits for its blocking tasks (a DNS
    // lookup, a jq evaluation of a run cut short), and the agent has reported what it did.
    std::process::exit(0)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
