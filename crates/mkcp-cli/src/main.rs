//! The `mkcp` command.
fn main() {
    eprintln!("mkcp: not yet implemented");
    std::process::exit(2);
}
