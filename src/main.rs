//! The `lmtrain` binary: everything lives in the library; this only reports errors.

fn main() {
    if let Err(e) = lmtrain::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
