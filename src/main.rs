//! `psim`: the command-line front end; the CLI itself is [`psim::cli`].

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`psim … | head`)
    // would panic; the default action ends the process quietly, like any CLI.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::ExitCode::from(psim::cli::main(std::env::args_os()))
}
