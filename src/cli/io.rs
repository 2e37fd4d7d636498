//! What the subcommands read and print: input files or stdin, and stdout
//! that a closed pipe does not turn into an error.

/// Reads a file, or stdin for `-`.
pub(super) fn read_input(path: &std::path::Path) -> std::io::Result<String> {
    if path.as_os_str() == "-" { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(path) }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub(super) fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
