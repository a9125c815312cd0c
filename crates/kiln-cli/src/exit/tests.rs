use anyhow::Context;
use kiln_domain::{Code, PortError};
use kiln_eval::EvalError;

use super::{ERROR, GATE_FAILED, code_of};

/// invalid input or a missing thing
const INVALID_INPUT: u8 = 2;

fn exit(e: impl std::error::Error + Send + Sync + 'static) -> u8 {
    code_of(&anyhow::Error::new(e).context("outer context").context("more context"))
}

#[test]
fn an_eval_error_in_the_chain_gives_its_exit_status() {
    let gates = EvalError::GateFailed { failed: 1, total: 3, details: "rmse 2 > 1".into() };
    assert_eq!(exit(gates), GATE_FAILED);
    assert_eq!(exit(EvalError::NotEnoughRows { rows: 1 }), INVALID_INPUT);
}

#[test]
fn the_first_coded_error_of_the_chain_decides() {
    assert_eq!(exit(PortError::not_found("no run abc")), INVALID_INPUT);
    assert_eq!(exit(PortError::io("connection refused")), ERROR);
    let facade = kiln::Error::OpenStore { uri: "x".into(), source: PortError::new(Code::StoreAuth, "401") };
    assert_eq!(exit(facade), Code::StoreAuth.exit_code());
    assert_eq!(code_of(&anyhow::anyhow!("no typed error at all")), ERROR);
    let wrapped: anyhow::Result<()> = Err(EvalError::Empty { input: "y_true" }).context("evaluating");
    assert_eq!(code_of(&wrapped.unwrap_err()), INVALID_INPUT);
}

#[test]
fn the_facades_own_checks_exit_1() {
    assert_eq!(exit(kiln::Error::Environment { message: "MLFLOW_X is not a number".into() }), ERROR);
    assert_eq!(exit(kiln::Error::NotAFolder { uri: "http://h".into() }), ERROR);
}

#[test]
fn the_exit_statuses_are_documented_ones() {
    assert_eq!((ERROR, GATE_FAILED), (1, 3));
    assert_eq!(Code::ConfigInvalid.exit_code(), INVALID_INPUT);
}
