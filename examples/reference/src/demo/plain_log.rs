//! Log files of the processes the demo starts, as plain text.

use std::io::Write as _;

/// Copies `from` to `log` line by line, without terminal escape sequences.
pub(super) async fn copy_plain(
    from: impl tokio::io::AsyncRead + Unpin,
    log: std::sync::Arc<std::sync::Mutex<std::fs::File>>,
) {
    use tokio::io::AsyncBufReadExt as _;
    let mut lines = tokio::io::BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut file) = log.lock() {
            let _ = writeln!(file, "{}", plain(&line));
        }
    }
}

/// `line` without ANSI escape sequences (`ESC [ ... letter`, and any other `ESC` + one byte).
pub(super) fn plain(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('\u{1b}') {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            // Parameters and intermediates, up to the final byte (`@` to `~`).
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    std::borrow::Cow::Owned(out)
}
