use super::features_shown;

#[test]
fn chart_titles_say_how_many_features_they_show() {
    for (shown, total, text) in [
        (25, 45, "top 25 of 45 features"),
        (20, 22, "top 20 of 22 features"),
        (12, 12, "12 features"),
        (1, 1, "1 feature"),
        (1, 3, "top 1 of 3 features"),
    ] {
        assert_eq!(features_shown(shown, total), text);
    }
}
