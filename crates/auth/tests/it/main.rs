//! The authenticator against real PostgreSQL servers (the testkit's shared servers: one per
//! version under `cargo xtask test`, PostgreSQL 15 under plain `cargo test`).
//!
//! A minimal blocking client speaks just enough protocol (startup, SSLRequest + rustls,
//! authentication messages) to drive [`Authenticator`] end to end.

mod wire;

use pg_walstream_auth::{AuthConfig, AuthError, Authenticator, ChannelBindingMode, RequireAuth};
use pg_walstream_testkit::{AuthUser, TestServer, servers};
use wire::{Outcome, Transport, run};

fn config(user: AuthUser) -> AuthConfig {
    let config = AuthConfig::new(user.name());
    match user.password() {
        Some(password) => config.password(password),
        None => config,
    }
}

fn login(server: &TestServer, user: AuthUser, transport: Transport, config: AuthConfig) -> Outcome {
    run(server, user.name(), transport, |security| {
        Authenticator::new(config, security)
    })
}

#[test]
fn every_password_method_authenticates() {
    for server in servers() {
        let v = server.version();
        for user in [
            AuthUser::Trust,
            AuthUser::Password,
            AuthUser::Md5,
            AuthUser::Scram,
        ] {
            let outcome = login(server, user, Transport::Plain, config(user));
            assert!(
                matches!(
                    outcome,
                    Outcome::Authenticated {
                        channel_bound: false
                    }
                ),
                "PG{v} {user:?}: {outcome:?}"
            );
        }
    }
}

#[test]
fn scram_plus_over_tls_binds_the_channel() {
    for server in servers() {
        let v = server.version();
        for user in [AuthUser::Scram, AuthUser::SslOnly] {
            let require = config(user).channel_binding(ChannelBindingMode::Require);
            let outcome = login(server, user, Transport::Tls, require);
            assert!(
                matches!(
                    outcome,
                    Outcome::Authenticated {
                        channel_bound: true
                    }
                ),
                "PG{v} {user:?}: {outcome:?}"
            );
        }
        // channel_binding=disable over TLS: plain SCRAM-SHA-256 with the "n" GS2 flag.
        let disable = config(AuthUser::Scram).channel_binding(ChannelBindingMode::Disable);
        let outcome = login(server, AuthUser::Scram, Transport::Tls, disable);
        assert!(
            matches!(
                outcome,
                Outcome::Authenticated {
                    channel_bound: false
                }
            ),
            "PG{v}: {outcome:?}"
        );
    }
}

#[test]
fn wrong_password_is_rejected_by_the_server() {
    for server in servers() {
        for user in [AuthUser::Password, AuthUser::Md5, AuthUser::Scram] {
            let wrong = AuthConfig::new(user.name()).password("not-the-password");
            let outcome = login(server, user, Transport::Plain, wrong);
            assert!(
                matches!(&outcome, Outcome::ServerError { sqlstate } if sqlstate == "28P01"),
                "PG{} {user:?}: {outcome:?}",
                server.version()
            );
        }
    }
}

#[test]
fn policies_refuse_before_sending_anything_secret() {
    for server in servers() {
        let v = server.version();
        let md5 = config(AuthUser::Md5).channel_binding(ChannelBindingMode::Require);
        let outcome = login(server, AuthUser::Md5, Transport::Tls, md5);
        assert!(
            matches!(
                outcome,
                Outcome::Refused(AuthError::ChannelBindingMethodRefused { .. })
            ),
            "PG{v}: {outcome:?}"
        );
        let trust = config(AuthUser::Trust).channel_binding(ChannelBindingMode::Require);
        let outcome = login(server, AuthUser::Trust, Transport::Tls, trust);
        assert!(
            matches!(
                outcome,
                Outcome::Refused(AuthError::ChannelBindingNotPerformed)
            ),
            "PG{v}: {outcome:?}"
        );
        let plain = config(AuthUser::Scram).channel_binding(ChannelBindingMode::Require);
        let outcome = login(server, AuthUser::Scram, Transport::Plain, plain);
        assert!(
            matches!(
                outcome,
                Outcome::Refused(AuthError::ChannelBindingNotOffered)
            ),
            "PG{v}: {outcome:?}"
        );
        let require =
            config(AuthUser::Md5).require_auth(RequireAuth::parse("scram-sha-256").unwrap());
        let outcome = login(server, AuthUser::Md5, Transport::Plain, require);
        assert!(
            matches!(
                outcome,
                Outcome::Refused(AuthError::RequireAuthFailed { .. })
            ),
            "PG{v}: {outcome:?}"
        );
        let require =
            config(AuthUser::Trust).require_auth(RequireAuth::parse("password,md5").unwrap());
        let outcome = login(server, AuthUser::Trust, Transport::Plain, require);
        assert!(
            matches!(
                outcome,
                Outcome::Refused(AuthError::RequireAuthFailed { .. })
            ),
            "PG{v}: {outcome:?}"
        );
    }
}
