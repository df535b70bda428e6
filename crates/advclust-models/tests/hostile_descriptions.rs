//! Regression tests (issue 12): a victim description that asks for an absurd architecture is a
//! typed error before anything is allocated.

use advclust_models::{CcConfig, EMBEDDED, ModelError, Victim};
use burn::tensor::Device;

fn device() -> Device {
    burn::tensor::Device::default()
}

/// The embedded CC description with `edit` applied to its JSON config.
fn edited(edit: impl Fn(&mut serde_json::Value)) -> String {
    let cc = EMBEDDED
        .iter()
        .find(|v| v.name == "pretrained-cc-mnist")
        .unwrap();
    let mut json: serde_json::Value = serde_json::from_str(cc.description).unwrap();
    edit(&mut json["config"]);
    json.to_string()
}

fn load_error(edit: impl Fn(&mut serde_json::Value)) -> ModelError {
    let cc = EMBEDDED
        .iter()
        .find(|v| v.name == "pretrained-cc-mnist")
        .unwrap();
    match Victim::from_bytes(&edited(edit), cc.weights, &device()) {
        Ok(_) => panic!("an absurd description was accepted"),
        Err(e) => e,
    }
}

/// An edit of a description's config.
type Edit = dyn Fn(&mut serde_json::Value);

#[test]
fn huge_architectures_are_refused_before_allocation() {
    let cases: Vec<(&str, Box<Edit>)> = vec![
        (
            "width 2e9",
            Box::new(|c| c["backbone"]["widths"][2] = 2_000_000_000u64.into()),
        ),
        (
            "stem 2e9",
            Box::new(|c| c["backbone"]["stem_width"] = 2_000_000_000u64.into()),
        ),
        (
            "head_hidden 4e9",
            Box::new(|c| c["head_hidden"] = 4_000_000_000u64.into()),
        ),
        (
            "instance_dim 4e9",
            Box::new(|c| c["instance_dim"] = 4_000_000_000u64.into()),
        ),
        (
            "num_clusters 3e9",
            Box::new(|c| c["num_clusters"] = 3_000_000_000u64.into()),
        ),
        (
            "blocks 1e8",
            Box::new(|c| c["backbone"]["blocks"][2] = 100_000_000u64.into()),
        ),
        (
            "input 1e6 x 1e6",
            Box::new(|c| c["input_shape"] = serde_json::json!([1, 1_000_000, 1_000_000])),
        ),
        (
            "many stages",
            Box::new(|c| {
                c["backbone"]["widths"] = serde_json::json!(vec![16; 1000]);
                c["backbone"]["blocks"] = serde_json::json!(vec![1; 1000]);
            }),
        ),
        (
            "widths that are each allowed but too many parameters together",
            Box::new(|c| {
                c["backbone"]["widths"] = serde_json::json!([16_000, 16_000, 16_000]);
            }),
        ),
    ];
    for (what, edit) in cases {
        let err = load_error(edit);
        assert!(
            matches!(
                err,
                ModelError::InvalidConfig { .. } | ModelError::BadDescription { .. }
            ),
            "{what}: {err}"
        );
        assert!(!err.to_string().contains('\n'), "{what}: one line: {err}");
    }
}

#[test]
fn train_widths_are_bounded_too() {
    use advclust_core::ParamGuard;
    assert!(
        CcConfig::new([1, 28, 28], 10, &[16, 32, 2_000_000_000])
            .check()
            .is_err()
    );
    assert!(
        CcConfig::new([1, 28, 28], 3_000_000_000, &[16])
            .check()
            .is_err()
    );
    assert!(
        CcConfig::new([1, 28, 28], 10, &[16, 32, 64])
            .check()
            .is_ok()
    );
}

/// A mixture description whose sizes are absurd (found by `advclust-fuzz`'s
/// `saved-victim-json` target: `num_clusters` 2^53 + 1 aborted, 2^63 - 1 panicked) is a typed
/// error before anything is allocated.
#[test]
fn a_huge_mixture_is_refused_before_allocation() {
    for k in [(1u64 << 53) + 1, i64::MAX as u64, u64::MAX] {
        let description = serde_json::json!({
            "format": "advclust-victim", "version": 1, "kind": "mixture",
            "config": {"kind": "gmm", "input_shape": [1, 28, 28], "num_clusters": k,
                       "components": 50},
            "num_values": 0
        });
        let err = Victim::from_bytes(&description.to_string(), &[], &device())
            .expect_err("a mixture of 2^53 clusters was accepted");
        assert!(
            matches!(err, ModelError::InvalidConfig { .. }),
            "k = {k}: {err}"
        );
    }
}

/// Every embedded victim's weights hold at least what its description claims (the check
/// passes on real files: they load), and a description with the same architecture given
/// a few bytes of weights is refused before the model is built (found by the fuzzer: a 200-byte
/// `model.json` of a 2^27-parameter ResNet made the loader build ~1 GB for a second).
#[test]
fn a_description_larger_than_its_weights_is_refused_before_building() {
    for embedded in EMBEDDED {
        embedded.load(&device()).unwrap();
        let count = victim_parameter_count(embedded);
        let params = embedded.parsed_description().unwrap().num_values;
        assert!(
            count as usize <= 2 * params && params <= 2 * count as usize,
            "{}: described {count}, built {params}",
            embedded.name
        );
        let err = Victim::from_bytes(embedded.description, &embedded.weights[..200], &device())
            .expect_err("200 bytes of weights were accepted");
        assert!(
            matches!(err, ModelError::CorruptCheckpoint { .. }),
            "{}: {err}",
            embedded.name
        );
        assert!(err.to_string().contains("parameters"), "{err}");
    }

    fn victim_parameter_count(embedded: &advclust_models::EmbeddedVictim) -> u64 {
        let description = embedded.parsed_description().unwrap();
        let config = description.config;
        match embedded.kind {
            advclust_models::VictimKind::Cc => serde_json::from_value::<CcConfig>(config)
                .unwrap()
                .parameter_count(),
            advclust_models::VictimKind::Scan | advclust_models::VictimKind::Nnm => {
                serde_json::from_value::<advclust_models::ScanConfig>(config)
                    .unwrap()
                    .parameter_count()
            }
            advclust_models::VictimKind::Ruc => {
                serde_json::from_value::<advclust_models::RucConfig>(config)
                    .unwrap()
                    .parameter_count()
            }
            advclust_models::VictimKind::Spice => {
                serde_json::from_value::<advclust_models::SpiceConfig>(config)
                    .unwrap()
                    .parameter_count()
            }
            advclust_models::VictimKind::Mixture => {
                serde_json::from_value::<advclust_models::MixtureConfig>(config)
                    .unwrap()
                    .parameter_count()
            }
            advclust_models::VictimKind::Mice => {
                serde_json::from_value::<advclust_models::MiceConfig>(config)
                    .unwrap()
                    .parameter_count()
            }
        }
        .unwrap()
    }
}
