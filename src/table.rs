//! The paper's Table 1 (clean -> adversarial NMI / ARI / ACC per victim and dataset) and
//! Table 2 (victim calls until the attack converges), regenerated on our victims and data.
//!
//! For every `victim@dataset` entry three attacks are trained on a seeded subset of the
//! dataset and evaluated on all of it: backprop at L-inf eps 0.1 in `[0, 1]` pixels with
//! convergence stopping (Table 1 and Table 2), backprop at the eps the paper authors' notebooks
//! train this victim with, converted from the victim's normalised space to pixels, and the
//! query-only NES gradient source at eps 0.1 with a fixed number of epochs (its calls are
//! counted and reported).

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use advclust_core::{NormKind, ParamGuard};
use advclust_gan::{AdvLoss, AttackConfig, GradientSource, Stopping};
use advclust_metrics::ClusteringScores;
use advclust_models::{EpsilonSpace, VictimKind};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::pipeline::{self, DatasetSpec, VictimSpec};

mod paper;

pub use paper::{PAPER_DATASETS, PAPER_TABLE, PaperRow, paper_row};

/// The largest table JSON [`load_rows`] reads (a table of thousands of rows is far smaller).
const MAX_TABLE_JSON: u64 = 16 << 20;

/// One cell group of the table: a victim and the dataset it is attacked (and evaluated) on,
/// written `<victim>@<dataset>` on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// The victim (embedded name or saved directory).
    pub victim: VictimSpec,
    /// The dataset.
    pub dataset: DatasetSpec,
}

impl FromStr for TableEntry {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let (victim, dataset) = s.split_once('@').ok_or_else(|| {
            Error::InvalidArgument(format!("table entry {s:?}: write <victim>@<dataset>"))
        })?;
        Ok(TableEntry {
            victim: victim.parse()?,
            dataset: dataset.parse()?,
        })
    }
}

impl fmt::Display for TableEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.victim, self.dataset)
    }
}

/// How the table's attacks are trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSettings {
    /// Images the generator is trained on (a seeded subset); evaluation uses the whole set.
    pub train_limit: usize,
    /// Training batch (one victim call per batch in backprop mode).
    pub batch_size: usize,
    /// Maximum epochs of the converging backprop attacks.
    pub max_epochs: usize,
    /// Relative tolerance of the convergence test on the generator loss.
    pub tolerance: f64,
    /// Epochs the loss must stay within the tolerance.
    pub patience: usize,
    /// NES directions per image.
    pub nes_samples: usize,
    /// NES sigma.
    pub nes_sigma: f32,
    /// NES epochs (fixed: its calls are the stated budget).
    pub nes_epochs: usize,
    /// Seed of every attack.
    pub seed: u64,
    /// What every attack maximises (the paper's output distance by default).
    #[serde(default)]
    pub loss: AdvLoss,
}

impl Default for TableSettings {
    fn default() -> Self {
        TableSettings {
            train_limit: 2048,
            batch_size: 256,
            max_epochs: 40,
            tolerance: 0.01,
            patience: 3,
            nes_samples: 10,
            nes_sigma: 0.01,
            nes_epochs: 12,
            seed: 0,
            loss: AdvLoss::OutputDistance,
        }
    }
}

/// One attack of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    /// The victim as named.
    pub victim: String,
    /// Its kind.
    pub kind: VictimKind,
    /// The dataset.
    pub dataset: String,
    /// Which attack (`backprop eps 0.1`, `backprop reference eps`, `nes eps 0.1`).
    pub attack: String,
    /// L-inf eps in `[0, 1]` pixels.
    pub epsilon_pixel: f32,
    /// The eps as the reference gives it, and its space, for the reference-eps row.
    pub epsilon_reference: Option<(f32, EpsilonSpace)>,
    /// Clean scores on the whole set.
    pub clean: ClusteringScores,
    /// Adversarial scores on the whole set.
    pub adversarial: ClusteringScores,
    /// Relative NMI drop, `(clean - adversarial) / clean`.
    pub nmi_drop: f64,
    /// Victim calls of training (batches).
    pub training_calls: u64,
    /// Images sent to the victim in training.
    pub training_images: u64,
    /// Victim calls until convergence, when the attack converged (Table 2).
    pub calls_to_convergence: Option<u64>,
    /// Epochs trained.
    pub epochs: usize,
    /// Wall time of training and evaluation, seconds.
    pub seconds: f64,
}

/// Runs the table's three attacks on every entry; each attack's run (generator, report,
/// figures) is written to `<out>/<victim>-<dataset>/<attack>/`, and `on_row` sees each row.
pub fn run_table1(
    entries: &[TableEntry],
    settings: &TableSettings,
    out: &Path,
    device: &Device,
    on_row: &mut dyn FnMut(&TableRow),
) -> Result<Vec<TableRow>, Error> {
    let mut rows = Vec::new();
    for entry in entries {
        let victim = entry.victim.load(device)?;
        let eval = entry.dataset.load(None, settings.seed)?;
        let train = if settings.train_limit < eval.len() {
            eval.shuffled(settings.seed).take(settings.train_limit)
        } else {
            eval.clone()
        };
        let reference = victim.kind().reference_epsilon();
        let converge = Stopping::Convergence {
            max_epochs: settings.max_epochs,
            min_epochs: 1,
            tolerance: settings.tolerance,
            patience: settings.patience,
        };
        let attacks = [
            (
                "backprop eps 0.1",
                0.1,
                None,
                GradientSource::Backprop,
                converge,
            ),
            (
                "backprop reference eps",
                victim.reference_pixel_epsilon(),
                Some(reference),
                GradientSource::Backprop,
                converge,
            ),
            (
                "nes eps 0.1",
                0.1,
                None,
                GradientSource::Nes {
                    samples: settings.nes_samples,
                    sigma: settings.nes_sigma,
                },
                Stopping::Epochs {
                    epochs: settings.nes_epochs,
                },
            ),
        ];
        let entry_dir = format!(
            "{}-{}",
            slug(&entry.victim.to_string()),
            slug(&entry.dataset.to_string())
        );
        for (name, eps, eps_ref, source, stopping) in attacks {
            let started = Instant::now();
            let config = AttackConfig::new()
                .with_norm(NormKind::Linf)
                .with_epsilon(eps)
                .with_gradient_source(source)
                .with_loss(settings.loss)
                .with_stopping(stopping)
                .with_batch_size(settings.batch_size)
                .with_seed(settings.seed)
                .with_max_images_per_call(Some(settings.batch_size))
                // The NES column of docs/results/table1.md was measured with per-pixel
                // directions (10 per image); the table keeps that setting.
                .with_direction_tile(1)
                .check()?;
            let outcome = pipeline::attack_victim(&config, &victim, &train, &eval, device, None)?;
            let mut metadata = serde_json::Map::new();
            metadata.insert("victim".into(), entry.victim.to_string().into());
            metadata.insert("dataset".into(), entry.dataset.to_string().into());
            let dir = out.join(&entry_dir).join(slug(name));
            pipeline::save_attack_run(&dir, &outcome, &eval, metadata)?;
            let report = outcome.attack.report();
            let (clean, adversarial) = (outcome.evaluation.clean, outcome.evaluation.adversarial);
            let row = TableRow {
                victim: entry.victim.to_string(),
                kind: victim.kind(),
                dataset: entry.dataset.to_string(),
                attack: name.to_string(),
                epsilon_pixel: eps,
                epsilon_reference: eps_ref,
                clean,
                adversarial,
                nmi_drop: if clean.nmi > 0.0 {
                    (clean.nmi - adversarial.nmi) / clean.nmi
                } else {
                    0.0
                },
                training_calls: report.training_queries.batch_calls,
                training_images: report.training_queries.images,
                calls_to_convergence: report.converged.as_ref().map(|c| c.queries.batch_calls),
                epochs: report.epochs,
                seconds: started.elapsed().as_secs_f64(),
            };
            on_row(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

fn slug(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// One line of the markdown table for `row`.
pub fn markdown_row(row: &TableRow) -> String {
    let eps = match row.epsilon_reference {
        Some((e, EpsilonSpace::Normalized)) => {
            format!("{:.4} (= {e} normalised)", row.epsilon_pixel)
        }
        _ => format!("{:.4}", row.epsilon_pixel),
    };
    let f = |s: ClusteringScores| format!("{:.4} / {:.4} / {:.4}", s.nmi, s.ari, s.acc);
    format!(
        "| {} | {} | {} | {} | {} | {} | {:.1} % | {} | {} | {:.0} |",
        row.victim,
        row.dataset,
        row.attack,
        eps,
        f(row.clean),
        f(row.adversarial),
        100.0 * row.nmi_drop,
        row.training_calls,
        row.calls_to_convergence
            .map_or("-".to_string(), |c| c.to_string()),
        row.seconds
    )
}

/// The markdown table of `rows`, with its header, then the paper's Tables 1-2 for the victim
/// kinds in `rows` beside our eps-0.1 backprop rows (our datasets differ from the paper's: the
/// header says so).
pub fn markdown_table(rows: &[TableRow]) -> String {
    let mut s = String::from(
        "| victim | dataset | attack | L-inf eps (pixels) | clean NMI / ARI / ACC | adversarial NMI / ARI / ACC | NMI drop | training calls | calls to convergence | seconds |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s += &markdown_row(r);
        s.push('\n');
    }
    s += &markdown_beside_paper(rows);
    s
}

/// Our backprop eps-0.1 rows beside the paper's Table 1 (NMI pre -> post, relative drop) and
/// Table 2 (queries until convergence, in our batch calls: two per paper query).
pub fn markdown_beside_paper(rows: &[TableRow]) -> String {
    let ours: Vec<&TableRow> = rows
        .iter()
        .filter(|r| r.attack == "backprop eps 0.1")
        .collect();
    if ours.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "\nBeside the paper (**our datasets differ**: ours are the rows' datasets on CPU-sized \
         victims, the paper's {}; NMI clean -> adversarial, relative drop, batch calls until \
         convergence; the paper's Table 2 queries are counted twice, one query = two batch calls):\n\n\
         | victim | ours: dataset | ours: NMI | ours: drop | ours: calls |",
        PAPER_DATASETS.join(", ")
    );
    for d in PAPER_DATASETS {
        s += &format!(" paper {d}: NMI | drop | calls |");
    }
    s += &format!("\n|---|---|---|---|---|{}\n", "---|---|---|".repeat(3));
    for r in ours {
        s += &format!(
            "| {} | {} | {:.4} -> {:.4} | {:.1} % | {} |",
            r.victim,
            r.dataset,
            r.clean.nmi,
            r.adversarial.nmi,
            100.0 * r.nmi_drop,
            r.calls_to_convergence
                .map_or_else(|| format!("({})", r.training_calls), |c| c.to_string())
        );
        match paper_row(r.kind) {
            Some(p) => {
                for d in 0..PAPER_DATASETS.len() {
                    s += &format!(
                        " {:.2} -> {:.2} | {:.1} % | {} |",
                        p.clean[d][0],
                        p.adversarial[d][0],
                        100.0 * p.nmi_drop(d),
                        2 * p.queries[d]
                    );
                }
            }
            None => s += &" not in the paper | | |".repeat(PAPER_DATASETS.len()),
        }
        s.push('\n');
    }
    s
}

/// The rows of a table an earlier `table1` run wrote (`table1.json`, or a JSON array of rows),
/// to put in front of new ones.
///
/// Errors: an unreadable or oversized file, JSON that is not a table, a row with a non-finite
/// or out-of-range score.
pub fn load_rows(path: &Path) -> Result<Vec<TableRow>, Error> {
    let value = pipeline::read_json(path, MAX_TABLE_JSON)?;
    let rows = value.get("rows").cloned().unwrap_or(value);
    let rows: Vec<TableRow> = serde_json::from_value(rows)
        .map_err(|e| Error::Json(format!("{}: not a table1 JSON: {e}", path.display())))?;
    for r in &rows {
        let scores = [r.clean, r.adversarial];
        let valid = scores.iter().all(|c| {
            [c.nmi, c.ari, c.acc]
                .iter()
                .all(|v| v.is_finite() && (-1.0..=1.0).contains(v))
        }) && r.nmi_drop.is_finite()
            && r.epsilon_pixel.is_finite()
            && r.seconds.is_finite();
        if !valid {
            return Err(Error::Json(format!(
                "{}: row {} / {} has a non-finite or out-of-range value",
                path.display(),
                r.victim,
                r.attack
            )));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published_rows() -> Vec<TableRow> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/results/table1-mnist.json");
        load_rows(&path).unwrap()
    }

    #[test]
    fn an_earlier_table_loads_and_sits_beside_the_paper() {
        let rows = published_rows();
        assert_eq!(rows.len(), 12);
        let md = markdown_table(&rows);
        // Every row of ours, then one side-by-side line per backprop eps-0.1 row.
        assert_eq!(md.matches("| pretrained-").count(), 12 + 4);
        assert!(md.contains("our datasets differ"));
        // SCAN's CIFAR-10 cell: 0.71 -> 0.27, a 62.0 % drop, 3,100 queries = 6,200 calls.
        let scan = md
            .lines()
            .rfind(|l| l.starts_with("| pretrained-scan-mnist"))
            .unwrap();
        assert!(scan.contains("0.71 -> 0.27 | 62.0 % | 6200 |"), "{scan}");
    }

    #[test]
    fn a_table_that_is_not_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("advclust-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let mut row = serde_json::to_value(&published_rows()[0]).unwrap();
        row["adversarial"]["nmi"] = serde_json::json!(7.5);
        let out_of_range = write(
            "range.json",
            &serde_json::json!({ "rows": [row] }).to_string(),
        );
        assert!(
            matches!(load_rows(&out_of_range), Err(Error::Json(m)) if m.contains("out-of-range"))
        );
        let not_a_table = write("other.json", r#"{"rows": [{"victim": 3}]}"#);
        assert!(matches!(load_rows(&not_a_table), Err(Error::Json(_))));
        let truncated = write("cut.json", r#"{"rows": [{"victim": "#);
        assert!(matches!(load_rows(&truncated), Err(Error::Json(_))));
        assert!(matches!(
            load_rows(&dir.join("absent.json")),
            Err(Error::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
