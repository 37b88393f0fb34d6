//! The `bff` service of the reference architecture; see `xray_demo::config` for its settings.

fn main() -> std::process::ExitCode {
    xray_demo::main_for(xray_demo::config::Role::Bff)
}
