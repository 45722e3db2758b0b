"""The test kit: helpers for tests, benchmarks and the local stack, kept out of the
services' runtime dependencies (issue 9).

- `backbone`: results and learners to publish, a provider's Kafka publisher, a real SMTP
  recorder, an OTLP/HTTP trace receiver, `eventually`;
- `providers`: the operator's admin client and a provider publishing as its SCRAM principal;
- `mailsink`: the local stack's SMTP sink (`python -m microcred_testkit.mailsink`);
- `vc_examples`: an example issuer that signs credentials for the verifier's tests.
"""
