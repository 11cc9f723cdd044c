//! `viewsync-bench`: multicast and view-change benchmarks of viewsync over real member
//! processes on loopback. See the `viewsync_benchmarks` crate documentation.
//!
//! ```text
//! viewsync-bench multicast                        # the default matrix
//! viewsync-bench multicast --members 3 --order total --size 1024 --senders 3 --mode flood --secs 10
//! viewsync-bench view-change                      # the default matrix
//! viewsync-bench view-change --members 5 --event kill
//! viewsync-bench replication                    # every strategy and etcd, the default matrix
//! viewsync-bench replication --strategy passive,etcd --clients 1,64 --reads 0,95
//! viewsync-bench replication --strategy active --rate 1000,4000,16000
//! viewsync-bench scale                          # groups of 3 to 64 members, one killed
//! viewsync-bench report                           # rewrite tables and plots from the CSVs
//! ```

use clap::Parser;
use std::process::ExitCode;
use viewsync_benchmarks::cli::{Cli, Command};
use viewsync_benchmarks::{member, orchestration, replication, scale};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Member(args) => member::run(args).map(|()| 0),
        Command::Multicast(args) => {
            orchestration::member_exe().and_then(|exe| orchestration::run_multicast(&args, &exe))
        }
        Command::ViewChange(args) => {
            orchestration::member_exe().and_then(|exe| orchestration::run_view_change(&args, &exe))
        }
        Command::Replication(args) => replication::run(&args),
        Command::Scale(args) => orchestration::member_exe().and_then(|exe| scale::run(&args, &exe)),
        Command::Report(args) => orchestration::rewrite_reports(&args.out)
            .and_then(|()| replication::output::rewrite(&args.out).map(|_| 0))
            .and_then(|n| scale::rewrite(&args.out, false).map(|()| n)),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("error: {failed} cells failed");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
