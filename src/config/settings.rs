//! The settings other modules take, built from a [`ServeConfig`]: the
//! hub's limits and access control's settings. (Their modules do not know
//! the command line.)

use super::ServeConfig;

impl ServeConfig {
    /// The hub's limits (`--history`, `--history-bytes`, `--history-ttl`,
    /// `--max-channels`, `--max-ingest-channels`).
    pub fn hub_limits(&self) -> crate::hub::HubLimits {
        crate::hub::HubLimits {
            history: self.history,
            history_bytes: self.history_bytes,
            history_ttl: self.history_ttl,
            max_channels: self.max_channels,
            max_ingest_channels: self.max_ingest_channels,
        }
    }

    /// The access-control part of the serve settings.
    pub fn auth_settings(&self) -> crate::auth::AuthSettings {
        crate::auth::AuthSettings {
            jwt_secret_file: self.jwt_secret_file.clone(),
            jwt_public_key: self.jwt_public_key.clone(),
            jwks_url: self.jwks_url.clone(),
            jwt_audience: self.jwt_audience.clone(),
            jwt_issuer: self.jwt_issuer.clone(),
            anonymous_subscribe: self.anonymous_subscribe.clone(),
            no_query_token: self.no_query_token,
            metrics_public: self.metrics_public,
            cors_origins: self.cors_origins.clone(),
            jwks_refresh: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ServeConfig;

    /// `HubLimits::default()` (used by tests and benches) is the binary's
    /// defaults, not a second copy that can drift.
    #[test]
    fn the_hub_defaults_are_the_flags_defaults() {
        let config = ServeConfig::from_args::<_, &str>([]).unwrap();
        assert_eq!(config.hub_limits(), crate::hub::HubLimits::default());
    }
}
