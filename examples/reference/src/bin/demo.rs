//! The one-command demo (run it through `scripts/demo.sh`); see `xray_demo::demo`.

fn main() -> std::process::ExitCode {
    xray_demo::demo::main()
}
