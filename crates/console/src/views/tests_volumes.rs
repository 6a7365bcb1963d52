//! The spawner's volume rows: mount paths as the CRD's rules, claims as the controller checks
//! them.

use berth_api::notebook::{FORBIDDEN_MOUNT_PATHS, Notebook};

use super::tests_schema::cel_rules;
use super::tests_spawn::{Fixture, claim, fields, refused_on};
use super::volumes::mount_path_problem;

#[test]
fn volume_mount_paths_follow_the_crd_rules() {
    for bad in [
        "/home/jovyan",
        "/home",
        "/etc",
        "/etc/x",
        "/usr/local",
        "/tmp",
        "/var/lib/x",
        "/var/run",
        "/proc",
        "/data/../etc",
        "/data/./x",
        "/data/",
        "data",
        "/",
        "/da ta",
        "/data\n",
        "//data",
        "/d<a>",
        "/lib64/x",
    ] {
        assert!(mount_path_problem(bad).is_some(), "{bad:?} accepted");
    }
    for good in [
        "/data",
        "/home/jovyan/data",
        "/var/data",
        "/opt/x.y_z-1",
        "/etcetera",
        "/homework",
    ] {
        assert_eq!(mount_path_problem(good), None, "{good:?} refused");
    }
    let f = Fixture::new();
    for path in ["/home/jovyan", "/etc"] {
        refused_on(
            f.parse(&[
                ("name", "lab"),
                ("volumes.0.name", "data"),
                ("volumes.0.mountPath", path),
                ("volumes.0.size", "1Gi"),
            ]),
            "volumes.0.mountPath",
        );
    }
    // Two volumes on one path, or with one name.
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", "a"),
            ("volumes.0.mountPath", "/data"),
            ("volumes.0.size", "1Gi"),
            ("volumes.1.name", "b"),
            ("volumes.1.mountPath", "/data"),
            ("volumes.1.size", "1Gi"),
        ]),
        "volumes.1.mountPath",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", "a"),
            ("volumes.0.mountPath", "/a"),
            ("volumes.0.size", "1Gi"),
            ("volumes.1.name", "a"),
            ("volumes.1.mountPath", "/b"),
            ("volumes.1.size", "1Gi"),
        ]),
        "volumes.1.name",
    );
}

#[test]
fn the_crd_forbids_the_same_mount_paths_as_the_parser() {
    let rules = cel_rules::<Notebook>();
    let (system, _) = rules
        .iter()
        .find(|(r, _)| r.contains("'/etc'") && r.contains("startsWith(p + '/')"))
        .expect("the CRD's system-directory rule");
    let listed = system.matches("', '").count() + 1;
    assert_eq!(listed, FORBIDDEN_MOUNT_PATHS.len(), "{system}");
    for p in FORBIDDEN_MOUNT_PATHS {
        assert!(system.contains(&format!("'{p}'")), "{p} not in {system}");
    }
    assert!(
        rules
            .iter()
            .any(|(r, _)| r.contains("self != '/home/jovyan' && self != '/home'"))
    );
    assert!(
        rules
            .iter()
            .any(|(r, _)| r.contains("^(/[A-Za-z0-9._-]+)+$"))
    );
    assert!(
        rules
            .iter()
            .any(|(r, _)| r.contains("self != 'home' && !self.endsWith('-home')"))
    );
    assert!(
        rules
            .iter()
            .any(|(r, _)| r.contains("size(self.metadata.name) <= 40"))
    );
}

#[test]
fn homes_of_notebooks_and_berths_own_claims_are_not_mounted() {
    let mut f = Fixture::new();
    let row = |claim: &'static str| {
        vec![
            ("name", "lab"),
            ("volumes.0.name", "data"),
            ("volumes.0.mountPath", "/data"),
            ("volumes.0.existingClaim", claim),
        ]
    };
    // Another notebook's home, and its own, by name (no claim list needed).
    let m = refused_on(f.parse(&row("old-home")), "volumes.0.existingClaim");
    assert!(m.contains("home volume of notebook old"), "{m}");
    refused_on(f.parse(&row("lab-home")), "volumes.0.existingClaim");
    // With the claims: Berth's home of a notebook that is gone, a model's volume, a missing claim.
    f.claims = Some(vec![
        claim(
            "gone-home",
            &[
                ("app.kubernetes.io/managed-by", "berth"),
                ("berth.dev/notebook", "gone"),
            ],
            &["ReadWriteOnce"],
        ),
        claim(
            "fraud-3f09c2a17e",
            &[
                ("app.kubernetes.io/managed-by", "berth"),
                ("berth.dev/model", "fraud"),
            ],
            &["ReadWriteOnce"],
        ),
        claim(
            "other-scratch",
            &[
                ("app.kubernetes.io/managed-by", "berth"),
                ("berth.dev/notebook", "other"),
                ("berth.dev/notebook-volume", "scratch"),
            ],
            &["ReadWriteMany"],
        ),
        claim("ro", &[], &["ReadOnlyMany"]),
        claim("lab-data", &[], &["ReadWriteOnce"]),
        claim("lab-home", &[], &["ReadWriteOnce"]),
    ]);
    let m = refused_on(f.parse(&row("gone-home")), "volumes.0.existingClaim");
    assert!(m.contains("home volume of notebook gone"), "{m}");
    let m = refused_on(f.parse(&row("fraud-3f09c2a17e")), "volumes.0.existingClaim");
    assert!(m.contains("model"), "{m}");
    refused_on(f.parse(&row("missing")), "volumes.0.existingClaim");
    refused_on(f.parse(&row("Bad/Name")), "volumes.0.existingClaim");
    let m = refused_on(f.parse(&row("ro")), "volumes.0.existingClaim");
    assert!(m.contains("read-only"), "{m}");
    // Another notebook's data volume is shared on purpose (ReadWriteMany).
    let mut shared = row("other-scratch");
    shared[0] = ("name", "lab2");
    assert!(f.parse(&shared).is_ok(), "{:?}", f.parse(&shared));
    let mut ro = row("ro");
    ro.push(("volumes.0.readOnly", "on"));
    ro[0] = ("name", "lab2");
    assert!(f.parse(&ro).is_ok());
    // A new volume whose claim <notebook>-<volume> exists and is not Berth's for it.
    let errors = f
        .parse(&[
            ("name", "lab"),
            ("volumes.0.name", "data"),
            ("volumes.0.mountPath", "/data"),
            ("volumes.0.size", "1Gi"),
        ])
        .unwrap_err();
    assert!(
        fields(&errors).contains(&"volumes.0.name"),
        "lab-data is taken: {errors:?}"
    );
    assert!(
        fields(&errors).contains(&"name"),
        "lab-home is not Berth's: {errors:?}"
    );
}

#[test]
fn a_home_berth_kept_for_a_notebook_of_that_name_is_found_again() {
    let mut f = Fixture::new();
    f.claims = Some(vec![claim(
        "lab-home",
        &[
            ("app.kubernetes.io/managed-by", "berth"),
            ("berth.dev/notebook", "lab"),
        ],
        &["ReadWriteOnce"],
    )]);
    assert!(f.parse(&[("name", "lab")]).is_ok());
}

#[test]
fn volume_rows_are_checked() {
    let f = Fixture::new();
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut v = vec![
            ("name", "lab"),
            ("volumes.0.name", "data"),
            ("volumes.0.mountPath", "/data"),
        ];
        v.extend_from_slice(extra);
        v
    };
    refused_on(f.parse(&base(&[])), "volumes.0.existingClaim");
    refused_on(
        f.parse(&base(&[
            ("volumes.0.size", "1Gi"),
            ("volumes.0.existingClaim", "x"),
        ])),
        "volumes.0.existingClaim",
    );
    refused_on(f.parse(&base(&[("volumes.0.size", "0")])), "volumes.0.size");
    refused_on(
        f.parse(&base(&[
            ("volumes.0.size", "1Gi"),
            ("volumes.0.accessMode", "ReadWriteAll"),
        ])),
        "volumes.0.accessMode",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", "home"),
            ("volumes.0.mountPath", "/d"),
            ("volumes.0.size", "1Gi"),
        ]),
        "volumes.0.name",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", "my-home"),
            ("volumes.0.mountPath", "/d"),
            ("volumes.0.size", "1Gi"),
        ]),
        "volumes.0.name",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", &"v".repeat(23)),
            ("volumes.0.mountPath", "/d"),
            ("volumes.0.size", "1Gi"),
        ]),
        "volumes.0.name",
    );
    refused_on(
        f.parse(&[("name", "lab"), ("volumes.16.name", "x")]),
        "volumes",
    );
    refused_on(
        f.parse(&[("name", "lab"), ("volumes.x.name", "x")]),
        "volumes",
    );
}

#[test]
fn a_volume_field_sent_twice_is_refused() {
    let f = Fixture::new();
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", "a"),
            ("volumes.0.mountPath", "/a"),
            ("volumes.0.mountPath", "/etc"),
            ("volumes.0.size", "1Gi"),
        ]),
        "volumes.0.mountPath",
    );
}
