//! `channel_binding` and the choice of SASL mechanism.

use std::fmt;
use std::str::FromStr;

use crate::{AuthError, Mechanism};

/// The `channel_binding` connection setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ChannelBindingMode {
    /// Never use channel binding.
    Disable,
    /// Use it when the server offers SCRAM-SHA-256-PLUS over TLS (libpq's default).
    #[default]
    Prefer,
    /// Refuse to authenticate without it.
    Require,
}

impl ChannelBindingMode {
    /// The setting's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
        }
    }
}

impl FromStr for ChannelBindingMode {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            _ => Err(AuthError::InvalidChannelBindingMode {
                value: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for ChannelBindingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Picks the SASL mechanism from the server's list, as libpq does.
///
/// - SCRAM-SHA-256-PLUS when offered, the connection uses TLS and `mode` is not `disable`;
/// - otherwise SCRAM-SHA-256 when offered;
/// - with `mode == Require`, only SCRAM-SHA-256-PLUS is acceptable.
///
/// ```
/// use pg_walstream_auth::{select_mechanism, ChannelBindingMode, Mechanism};
/// let offered = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"];
/// assert_eq!(select_mechanism(&offered, ChannelBindingMode::Prefer, true)?, Mechanism::ScramSha256Plus);
/// assert_eq!(select_mechanism(&offered, ChannelBindingMode::Disable, true)?, Mechanism::ScramSha256);
/// assert!(select_mechanism(&["SCRAM-SHA-256"], ChannelBindingMode::Require, true).is_err());
/// # Ok::<(), pg_walstream_auth::AuthError>(())
/// ```
///
/// # Errors
/// [`AuthError::PlusWithoutTls`] when the server offers SCRAM-SHA-256-PLUS on a plaintext
/// connection (a sign of TLS being stripped; libpq refuses too),
/// [`AuthError::NoSupportedSaslMechanism`] when nothing offered is SCRAM-SHA-256(-PLUS),
/// [`AuthError::ChannelBindingNotOffered`] when `mode` is `require` and PLUS cannot be used.
pub fn select_mechanism<S: AsRef<str>>(
    offered: &[S],
    mode: ChannelBindingMode,
    tls: bool,
) -> Result<Mechanism, AuthError> {
    let mut selected = None;
    for name in offered {
        match name.as_ref() {
            "SCRAM-SHA-256-PLUS" => {
                if !tls {
                    return Err(AuthError::PlusWithoutTls);
                }
                if mode != ChannelBindingMode::Disable {
                    selected = Some(Mechanism::ScramSha256Plus);
                }
            }
            "SCRAM-SHA-256" => {
                selected.get_or_insert(Mechanism::ScramSha256);
            }
            _ => {}
        }
    }
    let Some(selected) = selected else {
        let offered: Vec<&str> = offered.iter().map(AsRef::as_ref).collect();
        return Err(AuthError::NoSupportedSaslMechanism {
            offered: offered.join(", "),
        });
    };
    if mode == ChannelBindingMode::Require && selected != Mechanism::ScramSha256Plus {
        return Err(AuthError::ChannelBindingNotOffered);
    }
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [&str; 2] = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"];
    const PLAIN: [&str; 1] = ["SCRAM-SHA-256"];

    type Case = (
        &'static [&'static str],
        ChannelBindingMode,
        bool,
        Result<Mechanism, AuthError>,
    );

    #[test]
    fn selection_table() {
        use ChannelBindingMode::{Disable, Prefer, Require};
        use Mechanism::{ScramSha256, ScramSha256Plus};
        let cases: &[Case] = &[
            (&BOTH, Prefer, true, Ok(ScramSha256Plus)),
            (&BOTH, Require, true, Ok(ScramSha256Plus)),
            (&BOTH, Disable, true, Ok(ScramSha256)),
            (&BOTH, Prefer, false, Err(AuthError::PlusWithoutTls)),
            (&BOTH, Disable, false, Err(AuthError::PlusWithoutTls)),
            (&PLAIN, Prefer, true, Ok(ScramSha256)),
            (&PLAIN, Prefer, false, Ok(ScramSha256)),
            (&PLAIN, Disable, false, Ok(ScramSha256)),
            (
                &PLAIN,
                Require,
                true,
                Err(AuthError::ChannelBindingNotOffered),
            ),
            (
                &PLAIN,
                Require,
                false,
                Err(AuthError::ChannelBindingNotOffered),
            ),
            // Order in the server's list does not matter.
            (
                &["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"],
                Prefer,
                true,
                Ok(ScramSha256Plus),
            ),
            (
                &["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"],
                Disable,
                true,
                Ok(ScramSha256),
            ),
        ];
        for (offered, mode, tls, expected) in cases {
            assert_eq!(
                &select_mechanism(offered, *mode, *tls),
                expected,
                "{offered:?} {mode} tls={tls}"
            );
        }
    }

    #[test]
    fn nothing_supported_names_the_offer() {
        let err = select_mechanism(&["OAUTHBEARER", "FOO"], ChannelBindingMode::Prefer, true)
            .unwrap_err();
        assert_eq!(
            err,
            AuthError::NoSupportedSaslMechanism {
                offered: "OAUTHBEARER, FOO".into()
            }
        );
        assert!(select_mechanism::<&str>(&[], ChannelBindingMode::Prefer, true).is_err());
        // PLUS alone with channel_binding=disable leaves nothing usable.
        assert!(matches!(
            select_mechanism(&["SCRAM-SHA-256-PLUS"], ChannelBindingMode::Disable, true),
            Err(AuthError::NoSupportedSaslMechanism { .. })
        ));
    }

    #[test]
    fn mode_parses_and_displays() {
        for mode in [
            ChannelBindingMode::Disable,
            ChannelBindingMode::Prefer,
            ChannelBindingMode::Require,
        ] {
            assert_eq!(
                mode.to_string().parse::<ChannelBindingMode>().unwrap(),
                mode
            );
        }
        assert_eq!(
            "Require".parse::<ChannelBindingMode>().unwrap_err(),
            AuthError::InvalidChannelBindingMode {
                value: "Require".into()
            }
        );
        assert_eq!(ChannelBindingMode::default(), ChannelBindingMode::Prefer);
    }
}
