//! `viewsync client`: call a replicated key-value store or bank from the command line,
//! through a [`FrontEnd`].
//!
//! ```text
//! viewsync client --group kv --via 127.0.0.1:7701 --via 127.0.0.1:7702 put x 1
//! ok
//! viewsync client --group kv --via 127.0.0.1:7701 get x
//! value=1
//! viewsync client --group bank --via 127.0.0.1:7701 bank transfer a b 5
//! transfer refused: insufficient funds in a (balance 3, requested 5)
//! ```
//!
//! Each invocation is one front end making one call: one request id, retransmitted as the
//! front end's policy decides until a member answers or `--timeout` passes. The result is
//! printed on one line in a stable form ([`kv_line`], [`bank_line`]); the exit status says
//! whether there is one ([`EXIT_CODES`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use viewsync::wire::ClusterKey;
use viewsync::GroupName;

use crate::config::{ServiceConfig, Strategy};
use crate::frontend::{FrontEnd, FrontEndConfig, FrontEndError, Routing, SignedReplies};
use crate::state_machine::bank::{Bank, BankOp, BankOutput};
use crate::state_machine::kv::{KvOp, KvOutput, KvStore};

/// The state machine name of the key-value commands' requests.
pub const KV_MACHINE: &str = "kv";
/// The state machine name of the bank commands' requests.
pub const BANK_MACHINE: &str = "bank";

/// The operation was executed (once) and its result printed, whatever the result (a failed
/// compare-and-swap and a refused transfer are results).
pub const EXIT_OK: u8 = 0;
/// A member's reply could not be read: the operation may or may not have been executed.
pub const EXIT_BAD_REPLY: u8 = 1;
/// The group could not be reached before `--timeout` (the operation may or may not have been
/// executed), or the arguments or the key file are invalid.
pub const EXIT_UNREACHABLE: u8 = 2;
/// The group refused the request (too large, malformed, for another state machine; or a
/// node refused its frame: a wrong or missing key): it was executed nowhere.
pub const EXIT_REFUSED: u8 = 3;

/// The exit statuses, as `viewsync client --help` prints them.
pub const EXIT_CODES: &str = "\
Exit status:
  0  the operation was executed once and its result printed (a failed
     compare-and-swap or a refused transfer is a result too)
  1  a member's reply could not be read: the operation may or may not have
     been executed
  2  no member of the group could be reached before --timeout: the operation
     may or may not have been executed (and may still be); or an invalid
     argument or key file
  3  the group refused the request (too large, malformed, or for another
     state machine), or a node refused it for a wrong or missing cluster key:
     it was executed nowhere";

/// The arguments of `viewsync client`.
#[derive(Args, Debug, Clone)]
#[command(after_help = EXIT_CODES)]
pub struct ClientArgs {
    /// The group running the state machine.
    #[arg(long)]
    pub group: String,
    /// A node to reach the group through (any member, or several: the first that answers
    /// names the members). Repeatable.
    #[arg(long, required = true, value_name = "HOST:PORT", value_parser = parse_address)]
    pub via: Vec<SocketAddr>,
    /// The cluster key file (required by keyed clusters).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// How long to try before giving up (e.g. 500ms, 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Where requests go (the routing of the front end).
    #[arg(long, value_enum, default_value_t = Reads::Primary)]
    pub reads: Reads,
    /// For an `active-byzantine` group: a file naming `f` and every replica manager's
    /// public key (`[replica_keys]`, or a node's configuration file, whose `[service]`
    /// section has them). The request goes to every member and the result is the reply
    /// `f + 1` of them signed.
    #[arg(long, value_name = "PATH")]
    pub replica_keys: Option<PathBuf>,
    /// The operation.
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// The `--reads` choices.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Every request to the primary (linearizable).
    Primary,
    /// Reads to one member, the first --via that is a member; writes to the primary
    /// (sequentially consistent).
    Any,
    /// Every request to that member (the active strategies, where every member takes
    /// requests, and the naive one).
    Local,
}

impl From<Reads> for Routing {
    fn from(reads: Reads) -> Routing {
        match reads {
            Reads::Primary => Routing::Primary,
            Reads::Any => Routing::ReadsAnywhere,
            Reads::Local => Routing::Anywhere,
        }
    }
}

/// The operations of `viewsync client`.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// Set KEY to VALUE (key-value store). Prints `ok`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read KEY (key-value store). Prints `value=VALUE` or `absent`.
    Get {
        /// The key.
        key: String,
    },
    /// Remove KEY (key-value store). Prints `deleted` or `absent` (nothing to delete).
    Delete {
        /// The key.
        key: String,
    },
    /// Set KEY to NEW if it holds OLD (`-`: if it is absent). Prints `ok` or
    /// `cas failed: current=VALUE` (`cas failed: absent`).
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold; `-` for "absent".
        old: String,
        /// The new value.
        new: String,
    },
    /// The bank's operations.
    #[command(subcommand)]
    Bank(BankCommand),
}

/// The operations of `viewsync client ... bank`.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum BankCommand {
    /// Create ACCOUNT or set its balance. Prints `ok`.
    Set {
        /// The account.
        account: String,
        /// The balance.
        amount: u64,
    },
    /// Read ACCOUNT's balance. Prints `balance ACCOUNT=AMOUNT`.
    Get {
        /// The account.
        account: String,
    },
    /// Move AMOUNT from FROM to TO. Prints `ok` or `transfer refused: ...`.
    Transfer {
        /// The debited account.
        from: String,
        /// The credited account.
        to: String,
        /// How much.
        amount: u64,
    },
}

impl ClientCommand {
    /// The state machine the command's request is for.
    pub fn machine(&self) -> &'static str {
        match self {
            ClientCommand::Bank(_) => BANK_MACHINE,
            _ => KV_MACHINE,
        }
    }
}

/// Runs `viewsync client` and returns its exit status ([`EXIT_CODES`]); the result goes to
/// stdout, errors to stderr.
pub fn run(args: ClientArgs) -> ExitCode {
    let group = match GroupName::new(args.group) {
        Ok(group) => group,
        Err(error) => return fail(EXIT_UNREACHABLE, &error),
    };
    let key = match args.key_file.as_deref().map(ClusterKey::load).transpose() {
        Ok(key) => key,
        Err(error) => return fail(EXIT_UNREACHABLE, &error),
    };
    let signed_replies = match args
        .replica_keys
        .as_deref()
        .map(load_replica_keys)
        .transpose()
    {
        Ok(signed) => signed,
        Err(error) => return fail(EXIT_UNREACHABLE, &error),
    };
    let mut config = FrontEndConfig::new(group, args.via, args.command.machine());
    config.key = key;
    config.signed_replies = signed_replies;
    config.routing = args.reads.into();
    config.deadline = args.timeout;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(EXIT_BAD_REPLY, &error),
    };
    match runtime.block_on(execute(config, &args.command)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::from(EXIT_OK)
        }
        Err(error) => fail(exit_code(&error), &error),
    }
}

/// `f` and the replica managers' public keys from `path`: a file with `f` and a
/// `[replica_keys]` table, or a node's configuration file with them in `[service]`.
pub fn load_replica_keys(path: &std::path::Path) -> Result<SignedReplies, String> {
    let at = |problem: String| format!("{}: {problem}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| at(e.to_string()))?;
    let mut service = match table.remove("service") {
        Some(toml::Value::Table(service)) => service,
        _ => toml::Table::new(),
    };
    // A node's `[service]` section first, else the file's top level.
    let mut take = |name: &str| service.remove(name).or_else(|| table.remove(name));
    let f: Option<usize> = take("f")
        .map(toml::Value::try_into)
        .transpose()
        .map_err(|e| at(format!("f: {e}")))?;
    let replica_keys = take("replica_keys")
        .map(toml::Value::try_into)
        .transpose()
        .map_err(|e| at(format!("replica_keys: {e}")))?
        .unwrap_or_default();
    let service = ServiceConfig {
        strategy: Strategy::ActiveByzantine,
        f,
        replica_keys,
        ..ServiceConfig::default()
    };
    match service.signed_replies() {
        Ok(signed) => Ok(signed.expect("the Byzantine strategy has signed replies")),
        Err((key, problem)) => Err(at(format!("{key}: {problem}"))),
    }
}

fn fail(code: u8, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(code)
}

/// The exit status for a call that returned `error`.
pub fn exit_code(error: &FrontEndError) -> u8 {
    match error {
        FrontEndError::Refused(_) | FrontEndError::Rejected { .. } => EXIT_REFUSED,
        FrontEndError::Unavailable { .. } => EXIT_UNREACHABLE,
        FrontEndError::BadReply { .. } => EXIT_BAD_REPLY,
    }
}

/// Makes `command`'s call through a new front end configured by `config` (its `machine` is
/// set from the command) and returns the line to print.
pub async fn execute(
    mut config: FrontEndConfig,
    command: &ClientCommand,
) -> Result<String, FrontEndError> {
    config.machine = command.machine().to_owned();
    let op = match command {
        ClientCommand::Put { key, value } => KvOp::put(key, value),
        ClientCommand::Get { key } => KvOp::get(key),
        ClientCommand::Delete { key } => KvOp::delete(key),
        ClientCommand::Cas { key, old, new } => {
            let expected = (old != "-").then_some(old.as_str());
            KvOp::cas(key, expected, new)
        }
        ClientCommand::Bank(command) => {
            let op = match command {
                BankCommand::Set { account, amount } => BankOp::set(account, *amount),
                BankCommand::Get { account } => BankOp::get(account),
                BankCommand::Transfer { from, to, amount } => BankOp::transfer(from, to, *amount),
            };
            let output = FrontEnd::<Bank>::new(config).call(op.clone()).await?;
            return Ok(bank_line(&op, &output));
        }
    };
    let output = FrontEnd::<KvStore>::new(config).call(op).await?;
    Ok(kv_line(&output))
}

/// The line `viewsync client` prints for a key-value result.
pub fn kv_line(output: &KvOutput) -> String {
    match output {
        KvOutput::Written | KvOutput::Swapped => String::from("ok"),
        KvOutput::Value(Some(value)) => format!("value={value}"),
        KvOutput::Value(None) => String::from("absent"),
        KvOutput::Deleted { existed: true } => String::from("deleted"),
        KvOutput::Deleted { existed: false } => String::from("absent"),
        KvOutput::CasMismatch {
            current: Some(value),
        } => format!("cas failed: current={value}"),
        KvOutput::CasMismatch { current: None } => String::from("cas failed: absent"),
    }
}

/// The line `viewsync client` prints for the result of the bank operation `op`.
pub fn bank_line(op: &BankOp, output: &BankOutput) -> String {
    let refused = match op {
        BankOp::Transfer { .. } => "transfer refused",
        BankOp::GetBalance { .. } => "get refused",
        BankOp::SetBalance { .. } => "set refused",
    };
    match output {
        BankOutput::BalanceSet | BankOutput::Transferred => String::from("ok"),
        BankOutput::Balance(amount) => match op {
            BankOp::GetBalance { account } => format!("balance {account}={amount}"),
            _ => format!("balance={amount}"),
        },
        BankOutput::UnknownAccount { account } => format!("{refused}: unknown account {account}"),
        BankOutput::InsufficientFunds {
            account,
            balance,
            requested,
        } => format!(
            "{refused}: insufficient funds in {account} (balance {balance}, requested {requested})"
        ),
        BankOutput::Overflow { account } => {
            format!("{refused}: the balance of {account} would overflow")
        }
    }
}

/// Parses `IP:PORT` or `HOST:PORT` (a name is resolved now; the first address is taken);
/// the error says which form is expected ([`viewsync::config::resolve_address`]).
pub fn parse_address(text: &str) -> Result<SocketAddr, String> {
    viewsync::config::resolve_address(text)
}

/// Parses a duration: a number and a unit, `ms`, `s` or `m` (`500ms`, `30s`, `1.5s`, `2m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "" => return Err(format!("{text:?} needs a unit: ms, s or m (e.g. 30s)")),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s or m"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 30s, 2m)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
    }

    fn parse(args: &[&str]) -> Result<ClientArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("client").chain(args.iter().copied()))
            .map(|cli| cli.client)
    }

    #[test]
    fn arguments_parse_with_their_defaults() {
        let args = parse(&["--group", "kv", "--via", "127.0.0.1:7701", "put", "x", "1"]).unwrap();
        assert_eq!(args.group, "kv");
        assert_eq!(args.via, vec!["127.0.0.1:7701".parse().unwrap()]);
        assert_eq!(args.timeout, Duration::from_secs(30));
        assert_eq!(args.reads, Reads::Primary);
        assert_eq!(
            args.command,
            ClientCommand::Put {
                key: "x".into(),
                value: "1".into()
            }
        );
        assert_eq!(args.command.machine(), KV_MACHINE);

        let args = parse(&[
            "--group",
            "b",
            "--via",
            "127.0.0.1:1",
            "--via",
            "localhost:2",
            "--timeout",
            "500ms",
            "--reads",
            "local",
            "bank",
            "transfer",
            "a",
            "b",
            "5",
        ])
        .unwrap();
        assert_eq!(args.via.len(), 2);
        assert_eq!(args.via[1].port(), 2);
        assert_eq!(args.timeout, Duration::from_millis(500));
        assert_eq!(Routing::from(args.reads), Routing::Anywhere);
        assert_eq!(args.command.machine(), BANK_MACHINE);
        assert_eq!(
            args.command,
            ClientCommand::Bank(BankCommand::Transfer {
                from: "a".into(),
                to: "b".into(),
                amount: 5
            })
        );
        // --via is required, amounts are numbers.
        assert!(parse(&["--group", "kv", "get", "x"]).is_err());
        assert!(parse(&[
            "--group",
            "b",
            "--via",
            "127.0.0.1:1",
            "bank",
            "set",
            "a",
            "-3"
        ])
        .is_err());
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn results_print_in_a_stable_form() {
        assert_eq!(kv_line(&KvOutput::Written), "ok");
        assert_eq!(kv_line(&KvOutput::value("v")), "value=v");
        assert_eq!(kv_line(&KvOutput::Value(None)), "absent");
        assert_eq!(kv_line(&KvOutput::Deleted { existed: true }), "deleted");
        assert_eq!(kv_line(&KvOutput::Deleted { existed: false }), "absent");
        assert_eq!(kv_line(&KvOutput::Swapped), "ok");
        assert_eq!(
            kv_line(&KvOutput::CasMismatch {
                current: Some("3".into())
            }),
            "cas failed: current=3"
        );
        assert_eq!(
            kv_line(&KvOutput::CasMismatch { current: None }),
            "cas failed: absent"
        );
        let get = BankOp::get("x");
        assert_eq!(bank_line(&get, &BankOutput::Balance(3)), "balance x=3");
        assert_eq!(
            bank_line(
                &get,
                &BankOutput::UnknownAccount {
                    account: "x".into()
                }
            ),
            "get refused: unknown account x"
        );
        let transfer = BankOp::transfer("a", "b", 5);
        assert_eq!(bank_line(&transfer, &BankOutput::Transferred), "ok");
        assert_eq!(
            bank_line(
                &transfer,
                &BankOutput::InsufficientFunds {
                    account: "a".into(),
                    balance: 3,
                    requested: 5
                }
            ),
            "transfer refused: insufficient funds in a (balance 3, requested 5)"
        );
        assert_eq!(
            bank_line(
                &transfer,
                &BankOutput::Overflow {
                    account: "b".into()
                }
            ),
            "transfer refused: the balance of b would overflow"
        );
        assert_eq!(
            bank_line(&BankOp::set("a", 1), &BankOutput::BalanceSet),
            "ok"
        );
    }

    #[test]
    fn exit_codes_follow_the_error() {
        use viewsync::wire::Refusal;
        let group = GroupName::new("kv").unwrap();
        let unavailable = FrontEndError::Unavailable {
            group,
            tried: vec![
                "127.0.0.1:7701".parse().unwrap(),
                "127.0.0.1:7702".parse().unwrap(),
            ],
            attempts: 4,
            last: "cannot connect to 127.0.0.1:7702: connection refused".into(),
        };
        assert_eq!(exit_code(&unavailable), EXIT_UNREACHABLE);
        assert_eq!(
            unavailable.to_string(),
            "no member of group kv reachable through 127.0.0.1:7701, 127.0.0.1:7702 \
             (4 attempts): cannot connect to 127.0.0.1:7702: connection refused \
             (the request may or may not have been executed)"
        );
        let too_large = FrontEndError::Refused(Refusal::TooLarge {
            size: 2000,
            limit: 1000,
        });
        assert_eq!(exit_code(&too_large), EXIT_REFUSED);
        assert_eq!(
            too_large.to_string(),
            "refused by the group: request of 2000 bytes is larger than the limit of 1000 bytes"
        );
    }
}
