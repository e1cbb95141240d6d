//! `sqlx::migrate!` embeds the migration directories at compile time, but stable Rust cannot
//! tell cargo which files a macro read: without this, a new migration would not rebuild the
//! crate (sqlx's documented remedy).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
