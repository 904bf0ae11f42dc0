//! The connected server's version, for preflight checks.

use core::fmt;

use pg_walstream_transport::Transport;

use crate::SlotError;

/// A PostgreSQL server version as `major.minor` (`server_version_num / 10000`, `% 10000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    /// Major version, e.g. 17.
    pub major: u32,
    /// Minor version, e.g. 10.
    pub minor: u32,
}

impl ServerVersion {
    /// From the `server_version_num` form (`170010` → 17.10).
    pub fn from_num(num: u32) -> Self {
        ServerVersion {
            major: num / 10_000,
            minor: num % 10_000,
        }
    }

    /// The version of the server behind `connection`, from its `server_version` parameter.
    ///
    /// # Errors
    /// [`SlotError::BadResult`] when the server did not report a parsable version.
    pub fn of(connection: &impl Transport) -> Result<Self, SlotError> {
        connection
            .server_version_num()
            .map(Self::from_num)
            .ok_or_else(|| {
                SlotError::bad_result("startup", "the server reported no server_version")
            })
    }

    /// Fails with [`SlotError::Unsupported`] unless the major version is at least `needs`.
    ///
    /// # Errors
    /// As described.
    pub fn require(self, feature: &'static str, needs: u32) -> Result<(), SlotError> {
        if self.major >= needs {
            Ok(())
        } else {
            Err(SlotError::Unsupported {
                feature,
                needs,
                server: self.to_string(),
            })
        }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_names_feature_and_versions() {
        let v = ServerVersion::from_num(160_014);
        assert_eq!(v.to_string(), "16.14");
        assert!(v.require("parallel streaming", 16).is_ok());
        let error = v.require("failover slots", 17).unwrap_err();
        assert_eq!(
            error.to_string(),
            "failover slots needs PostgreSQL 17; server is 16.14"
        );
    }
}
