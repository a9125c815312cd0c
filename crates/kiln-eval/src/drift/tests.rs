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
