//! The resize form of a notebook.

use berth_api::notebook::Notebook;
use serde_json::json;

use super::tests_spawn::{Fixture, fields, form, templates};

#[test]
fn a_resize_moves_between_bundles_and_resources_leaving_nothing_behind() {
    use super::form::apply_merge_patch;
    use super::resize::parse_resize;
    let mut nb = Fixture::new()
        .parse(&[
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("cpu", "2"),
            ("gpu", "2"),
        ])
        .unwrap();
    nb.metadata.resource_version = Some("17".into());
    let t = templates();
    // Explicit → a bundle: resources go.
    let patch = parse_resize(&form(&[("bundle", "a100-1")]), &nb, &t).unwrap();
    assert_eq!(
        patch,
        json!({"metadata": {"resourceVersion": "17"}, "spec": {"bundle": "a100-1", "resources": null}})
    );
    // Explicit → other explicit: the GPU asked before does not linger.
    let patch = parse_resize(&form(&[("cpu", "4"), ("memory", "16Gi")]), &nb, &t).unwrap();
    let mut after = serde_json::to_value(&nb).unwrap();
    apply_merge_patch(&mut after, &patch);
    let after: Notebook = serde_json::from_value(after).unwrap();
    let r = after.spec.resources.unwrap();
    assert_eq!(r.requests.keys().collect::<Vec<_>>(), ["cpu", "memory"]);
    assert!(!r.limits.contains_key("nvidia.com/gpu"));
    assert_eq!(
        after.spec.image_id, nb.spec.image_id,
        "nothing else changes"
    );
    // Above the maximum, both, neither, unknown bundle.
    let refused = |pairs: &[(&str, &str)], field: &str| {
        let e = parse_resize(&form(pairs), &nb, &t).unwrap_err();
        assert!(e.iter().any(|e| e.field == field), "{pairs:?}: {e:?}");
    };
    refused(&[("cpu", "16001m")], "cpu");
    refused(&[("memory", "129Gi")], "memory");
    refused(&[("bundle", "a100-1"), ("cpu", "1")], "bundle");
    refused(&[], "bundle");
    refused(&[("bundle", "huge")], "bundle");
    // A template that is gone.
    let e = parse_resize(&form(&[("bundle", "a100-1")]), &nb, &[]).unwrap_err();
    assert_eq!(fields(&e), ["form"]);
}
