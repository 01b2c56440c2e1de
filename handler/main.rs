//! The `handler` executable: the Functions host starts it with no arguments to serve; admins
//! run it with a subcommand (`handler policy list`, `handler requests show ID`, ...).

use std::process::ExitCode;

fn main() -> ExitCode {
    b2b_signup::cli::main()
}
