use super::*;

#[test]
fn bin_index_is_numpys_searchsorted_right() {
    let edges = [1.0, 2.0, 3.0];
    assert_eq!(bin_index(&edges, 0.5), 0);
    assert_eq!(bin_index(&edges, 1.0), 1);
    assert_eq!(bin_index(&edges, 2.5), 2);
    assert_eq!(bin_index(&edges, 3.0), 3);
    assert_eq!(bin_index(&edges, 9.0), 3);
    assert_eq!(bin_index(&[], 9.0), 0);
}

#[test]
fn quantiles_are_numpys_linear() {
    // np.quantile([1, 2, 3, 4], [0.1, 0.5, 0.9]) == [1.3, 2.5, 3.7]
    let s = [1.0, 2.0, 3.0, 4.0];
    assert!((quantile_sorted(&s, 0.1) - 1.3).abs() < 1e-15);
    assert_eq!(quantile_sorted(&s, 0.5), 2.5);
    assert!((quantile_sorted(&s, 0.9) - 3.7).abs() < 1e-15);
}

#[test]
fn psi_is_zero_on_the_reference_and_grows_with_a_shift() {
    let values: Vec<f64> = (0..1000).map(|i| f64::from(i) / 10.0).collect();
    let p = NumericProfile::of(&values).unwrap();
    assert_eq!(p.edges.len(), 9);
    let mut counts = vec![0u64; p.fractions.len()];
    for &v in &values {
        counts[bin_index(&p.edges, v)] += 1;
    }
    assert!(psi(&p.fractions, &counts).abs() < 1e-12);
    let mut shifted = vec![0u64; p.fractions.len()];
    for &v in &values {
        shifted[bin_index(&p.edges, v + 30.0)] += 1;
    }
    assert!(psi(&p.fractions, &shifted) > 1.0);
    assert!(psi(&p.fractions, &[0; 10]).is_nan());
}

#[test]
fn profile_round_trips_and_refuses_other_versions() {
    let values: Vec<f64> = (0..2000).map(|i| (f64::from(i) * 0.37).sin()).collect();
    let cats: Vec<Option<&str>> =
        (0..2000).map(|i| if i % 7 == 0 { None } else { Some(["a", "b", "c"][i % 3]) }).collect();
    let profile = Profile {
        version: PROFILE_VERSION,
        rows: 2000,
        inputs: vec![ColumnProfile::numeric("x", &values), ColumnProfile::categorical("c", &cats)],
        features: vec![ColumnProfile::numeric("x", &values)],
        prediction: None,
        target: None,
        series: Vec::new(),
    };
    let sample = &profile.inputs[0].numeric.as_ref().unwrap().sample;
    assert_eq!(sample.len(), SAMPLE_CAP);
    assert_eq!(profile.inputs[1].missing, 286);
    let bytes = profile.to_json();
    assert_eq!(Profile::from_json(&bytes).unwrap(), profile);
    let other = String::from_utf8(bytes).unwrap().replacen("\"version\":1", "\"version\":9", 1);
    let e = Profile::from_json(other.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("has 9"), "{e}");
    let e = Profile::from_json(br#"{"version":1,"rows":"x"}"#).unwrap_err().to_string();
    assert!(e.contains("rows"), "{e}");
}

// scipy 1.17.1's values (tests/test_drift.py checks the same on real data through the CLI)
include!("scipy_cases.rs");

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-9 + 1e-9 * want.abs(), "{what}: got {got:e}, scipy {want:e}");
}

#[test]
fn kstwo_sf_is_scipys_on_every_branch() {
    for &(n, x, want) in KSTWO {
        close(kstwo_sf(x, n), want, &format!("kstwo.sf({x}, {n})"));
    }
    for &(n, x, want) in SMIRNOV {
        close(smirnov(n, x), want, &format!("smirnov({n}, {x})"));
    }
}

#[test]
fn ks_and_wasserstein_are_scipys_on_normal_samples() {
    let mut rs = kiln_domain::NumpyRandomState::new(7);
    for &(n1, n2, shift, d, p, w) in KS {
        let a: Vec<f64> = (0..n1).map(|_| (rs.standard_normal() * 1000.0).round_ties_even() / 1000.0).collect();
        let b: Vec<f64> =
            (0..n2).map(|_| ((rs.standard_normal() + shift) * 1000.0).round_ties_even() / 1000.0).collect();
        let r = ks_2samp(&a, &b).unwrap();
        close(r.statistic, d, &format!("ks statistic {n1}x{n2}"));
        close(r.pvalue, p, &format!("ks p-value {n1}x{n2}"));
        close(wasserstein_distance(&a, &b).unwrap(), w, &format!("wasserstein {n1}x{n2}"));
    }
}

#[test]
fn chi2_sf_is_scipys_chdtrc() {
    for &(df, x, want) in CHI2 {
        close(chi2_sf(x, df), want, &format!("chdtrc({df}, {x})"));
    }
}
