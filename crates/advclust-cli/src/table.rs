//! `advclust table1`: the paper's Tables 1-2 on our victims, beside the paper's numbers.

use std::path::PathBuf;
use std::time::Instant;

use advclust::Error;
use advclust::pipeline;
use advclust::table;
use clap::Args;

use crate::Loss;

#[derive(Args, Debug)]
pub(crate) struct Table1 {
    /// Entries `<victim>@<dataset>` (e.g. pretrained-cc-mnist@mnist); none with --include
    /// merges the included tables only.
    #[arg(long = "entry", required_unless_present = "include")]
    entries: Vec<advclust::table::TableEntry>,
    /// Generator training images per entry (evaluation uses the whole set).
    #[arg(long, default_value_t = 2048)]
    train_limit: usize,
    /// NES epochs (the NES column's budget).
    #[arg(long, default_value_t = 12)]
    nes_epochs: usize,
    /// Seed of every attack.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// What every attack of the table maximises.
    #[arg(long, value_enum, default_value_t = Loss::Distance)]
    loss: Loss,
    /// Rows of earlier `table1` runs (their table1.json) to put in front of this run's, so
    /// one table holds victims attacked in separate runs; each row keeps its own numbers.
    #[arg(long)]
    include: Vec<PathBuf>,
    /// Output directory: table1.json, table1.md and one folder of runs per entry.
    #[arg(long, default_value = "runs/table1")]
    out: PathBuf,
}

pub(crate) fn table1(
    a: Table1,
    device: &advclust::burn::tensor::Device,
    command: String,
) -> Result<(), Error> {
    let settings = table::TableSettings {
        loss: a.loss.into(),
        train_limit: a.train_limit,
        nes_epochs: a.nes_epochs,
        seed: a.seed,
        ..table::TableSettings::default()
    };
    // Read (and validate) the included tables before hours of attacks, not after.
    let mut rows = Vec::new();
    for path in &a.include {
        rows.extend(table::load_rows(path)?);
    }
    let included = rows.len();
    let started = Instant::now();
    rows.extend(table::run_table1(
        &a.entries,
        &settings,
        &a.out,
        device,
        &mut |row| println!("{}", table::markdown_row(row)),
    )?);
    let json = serde_json::json!({
        "command": command,
        "settings": settings,
        "included_from": a.include,
        "included_rows": included,
        "rows": rows,
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    pipeline::write_json(&a.out.join("table1.json"), &json)?;
    let md = format!("`{command}`\n\n{}", table::markdown_table(&rows));
    pipeline::write_text(&a.out.join("table1.md"), &md)?;
    println!("wrote {}/table1.json and table1.md", a.out.display());
    Ok(())
}
