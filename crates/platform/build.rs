//! Embeds every `migrations/NNNN_name.sql` file in the binary, so services migrate with no files on disk.

use std::fmt::Write as _;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").canonicalize()?;
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    entries.sort();
    let mut code = String::from(
        "/// (version, description, SQL) of every migration, in order.\npub const MIGRATIONS: &[(i64, &str, &str)] = &[\n",
    );
    for path in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        let stem = path.file_stem().and_then(|s| s.to_str()).ok_or("bad migration file name")?;
        let (version, description) = stem.split_once('_').ok_or("migration files are named NNNN_description.sql")?;
        let version: i64 = version.parse()?;
        writeln!(code, "    ({version}, {description:?}, include_str!({:?})),", path.display().to_string())?;
    }
    code.push_str("];\n");
    std::fs::write(Path::new(&std::env::var("OUT_DIR")?).join("migrations.rs"), code)?;
    Ok(())
}
