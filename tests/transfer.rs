//! `advclust::transfer` on the embedded victims at small sizes: the matrix's shape and clean
//! column, reuse of saved generators (identical matrix, nothing retrained), and the typed errors
//! of a victim that does not fit the dataset and of a generator saved for another victim.

use std::path::{Path, PathBuf};

use advclust::models::{CcConfig, CcModel, Victim};
use advclust::pipeline::{DatasetSpec, VictimSpec};
use advclust::transfer::{TransferMatrix, TransferSettings, run_transfer};
use advclust::{Error, device};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("advclust-transfer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn tiny() -> TransferSettings {
    TransferSettings {
        train_limit: 64,
        eval_limit: Some(128),
        batch_size: 32,
        max_epochs: 1,
        seed: 5,
        ..TransferSettings::default()
    }
}

/// The matrix of `victims` on the embedded MNIST at the tiny settings, into `out`.
fn quiet_transfer(victims: &[VictimSpec], out: &Path) -> Result<TransferMatrix, Error> {
    let device = device(None)?;
    run_transfer(
        victims,
        &DatasetSpec::MnistEmbedded,
        &tiny(),
        out,
        &device,
        &mut |_, _, _| {},
    )
}

fn victims() -> Vec<VictimSpec> {
    ["pretrained-cc-mnist", "pretrained-scan-mnist"]
        .iter()
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn the_matrix_is_complete_and_a_second_run_reuses_its_generators() {
    let device = device(None).unwrap();
    let out = scratch("reuse");
    let mut cells = Vec::new();
    let first = run_transfer(
        &victims(),
        &DatasetSpec::MnistEmbedded,
        &tiny(),
        &out,
        &device,
        &mut |s, t, _| cells.push(format!("{s}->{t}")),
    )
    .unwrap();
    assert_eq!(cells.len(), 4);
    assert_eq!(first.images, 128);
    assert_eq!(first.trained, [true, true]);
    assert_eq!(first.adversarial.len(), 2);
    assert!(first.adversarial.iter().all(|row| row.len() == 2));
    assert!(first.clean.iter().all(|c| c.nmi > 0.5), "{:?}", first.clean);
    // One epoch of 64 images in batches of 32: 2 steps of 2 calls each.
    assert_eq!(first.training_calls, [4, 4]);
    let md = first.markdown();
    assert!(md.contains("| cc | scan |"), "{md}");
    let png = out.join("transfer.png");
    advclust::transfer::heatmap(&first, &png).unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);

    let second = quiet_transfer(&victims(), &out).unwrap();
    assert_eq!(second.trained, [false, false]);
    assert_eq!(second.adversarial, first.adversarial);
    assert_eq!(second.clean, first.clean);

    // The same directory with the victims swapped: row 0 is now SCAN's, but 0-cc holds CC's
    // generator; copied into SCAN's place it is refused, not used.
    let generators = out.join("generators");
    let copy = generators.join("0-scan");
    std::fs::create_dir_all(copy.join("attack")).unwrap();
    for entry in std::fs::read_dir(generators.join("0-cc/attack")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join("attack").join(entry.file_name())).unwrap();
    }
    std::fs::copy(
        generators.join("0-cc/report.json"),
        copy.join("report.json"),
    )
    .unwrap();
    let mut swapped = victims();
    swapped.reverse();
    let err = quiet_transfer(&swapped, &out).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("pretrained-cc-mnist") && m.contains("pretrained-scan-mnist")),
        "{err}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_victim_for_other_images_is_a_typed_error_naming_both() {
    let device = device(None).unwrap();
    let out = scratch("shape");
    let colour = CcModel::new(&CcConfig::new([3, 32, 32], 10, &[4, 8]), 0, &device).unwrap();
    let dir = out.join("colour-victim");
    Victim::from(colour).save(&dir).unwrap();
    let specs = vec![
        "pretrained-cc-mnist".parse().unwrap(),
        VictimSpec::Saved(dir.clone()),
    ];
    let err = quiet_transfer(&specs, &out).unwrap_err();
    match err {
        Error::ShapeMismatch {
            shape,
            target,
            target_shape,
            ..
        } => {
            assert_eq!(shape, [1, 28, 28]);
            assert_eq!(target_shape, [3, 32, 32]);
            assert!(target.contains("colour-victim"), "{target}");
        }
        other => panic!("expected a shape mismatch, got {other}"),
    }
    let one = &specs[..1];
    assert!(matches!(
        quiet_transfer(one, &out),
        Err(Error::InvalidArgument(_))
    ));
    std::fs::remove_dir_all(&out).unwrap();
}
