use super::*;

#[test]
fn the_linked_library_is_the_vendored_version() {
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: three writable ints
    unsafe { XGBoostVersion(&mut major, &mut minor, &mut patch) };
    assert_eq!(format!("{major}.{minor}.{patch}"), VERSION);
}
