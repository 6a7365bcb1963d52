//! Activity probes: what the spec asks for, and the parsing of hostile answers.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use berth_api::notebook::{ActivityProbe, ExecProbe, HttpProbe, JupyterProbe};

use super::probe::{self, Probe};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn exec_prints_rfc3339_or_unix_seconds() {
    assert_eq!(
        probe::parse_time("2026-11-30T14:00:00Z\n"),
        Ok(t("2026-11-30T14:00:00Z"))
    );
    assert_eq!(
        probe::parse_time("  2026-11-30T15:00:00+01:00 "),
        Ok(t("2026-11-30T14:00:00Z"))
    );
    assert_eq!(
        probe::parse_time("1796047200"),
        Ok(t("2026-11-30T14:00:00Z"))
    );
    for bad in [
        "",
        "\n",
        "yesterday",
        "2026-11-30",
        "-5",
        "1e9",
        "99999999999999999999",
        "2026-11-30T14:00:00Z extra",
    ] {
        assert!(probe::parse_time(bad).is_err(), "{bad:?} parsed");
    }
    // More than a time is refused without being echoed whole.
    let long = "1".repeat(5000);
    let err = probe::parse_time(&long).unwrap_err();
    assert!(err.len() < 100, "{err}");
}

#[test]
fn http_reads_last_activity_or_code_servers_heartbeat() {
    assert_eq!(
        probe::parse_http(r#"{"lastActivity": "2026-11-30T14:00:00Z"}"#),
        Ok(t("2026-11-30T14:00:00Z"))
    );
    assert_eq!(
        probe::parse_http(r#"{"lastActivity": 1796047200}"#),
        Ok(t("2026-11-30T14:00:00Z"))
    );
    // code-server's /healthz.
    assert_eq!(
        probe::parse_http(r#"{"status": "alive", "lastHeartbeat": 1796047200123}"#),
        Ok(t("2026-11-30T14:00:00.123Z"))
    );
    for bad in [
        "{}",
        "[]",
        "not json",
        r#"{"lastActivity": "soon"}"#,
        r#"{"lastHeartbeat": "1796047200123"}"#,
        r#"{"lastActivity": 1.5}"#,
        r#"{"lastHeartbeat": 1e300}"#,
    ] {
        assert!(probe::parse_http(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn a_time_in_the_future_counts_as_now() {
    let now = t("2026-11-30T14:00:00Z");
    let a = probe::activity_at(t("2099-01-01T00:00:00Z"), now);
    assert_eq!(a.last_activity, now);
    assert_eq!(a.busy_kernels, 0);
    let past = t("2026-11-30T13:00:00Z");
    assert_eq!(probe::activity_at(past, now).last_activity, past);
}

#[test]
fn the_spec_chooses_the_probe_and_paths_cannot_climb_out_of_the_pod() {
    let none = ActivityProbe {
        jupyter: None,
        exec: None,
        http: None,
    };
    assert_eq!(probe::from_spec(None), Ok(Probe::Jupyter));
    assert!(probe::from_spec(Some(&none)).is_err());
    let jupyter = ActivityProbe {
        jupyter: Some(JupyterProbe {}),
        ..none.clone()
    };
    assert_eq!(probe::from_spec(Some(&jupyter)), Ok(Probe::Jupyter));
    let exec = ActivityProbe {
        exec: Some(ExecProbe {
            command: vec!["cat".into(), "/tmp/last-activity".into()],
            timeout_seconds: None,
        }),
        ..none.clone()
    };
    assert_eq!(
        probe::from_spec(Some(&exec)),
        Ok(Probe::Exec {
            command: vec!["cat".into(), "/tmp/last-activity".into()],
            timeout: Duration::from_secs(5),
        })
    );
    let both = ActivityProbe {
        jupyter: Some(JupyterProbe {}),
        ..exec.clone()
    };
    assert!(probe::from_spec(Some(&both)).is_err());
    let http = |path: &str| ActivityProbe {
        http: Some(HttpProbe {
            port: 8080,
            path: path.into(),
        }),
        ..none.clone()
    };
    assert_eq!(
        probe::from_spec(Some(&http("/healthz"))),
        Ok(Probe::Http {
            port: 8080,
            path: "/healthz".into()
        })
    );
    for bad in [
        "healthz",
        "/../../../api/v1/secrets",
        "/a/../b",
        "/%2e%2e/x",
        "/healthz?x=1",
        "/a b",
        "/a\\b",
    ] {
        assert!(!probe::http_path_allowed(bad), "{bad} allowed");
        assert!(probe::from_spec(Some(&http(bad))).is_err(), "{bad} allowed");
    }
}
