//! `declare_settings!`: from the one table in `declared.rs`, the three things every setting needs —
//! the layer type that clap fills from flags and `LINEAGE_*` and serde fills from `lineage.toml`
//! (`SettingsArgs`), how one layer goes over another, and the typed values with their defaults.

/// A secret's text is held as `SensitiveSetting` (redacted `Debug`), any other as `RawSetting`.
macro_rules! setting_text {
    () => {
        $crate::configuration::declared::RawSetting
    };
    (secret) => {
        $crate::configuration::SensitiveSetting
    };
}

macro_rules! declare_settings {
    ($(
        $(#[$attr:meta])*
        $name:ident: $ty:ty = $default:expr,
            env $env:literal, parse $parse:expr $(, $secret:ident)?;
    )*) => {
        /// One layer of settings: the flags with the `LINEAGE_*` variables (clap, flags win), or
        /// `lineage.toml` (serde). A setting left `None` comes from the layer below.
        #[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct SettingsArgs {
            /// Configuration file (TOML, the same keys as the flags with `_` for `-`).
            #[arg(long, env = "LINEAGE_CONFIG", global = true)]
            #[serde(skip)]
            pub config: Option<std::path::PathBuf>,
            $(
                $(#[$attr])*
                #[arg(long, env = $env, global = true)]
                pub $name: Option<setting_text!($($secret)?)>,
            )*
        }

        impl SettingsArgs {
            /// This layer over `lower`: each setting from here when set here.
            pub fn over(self, lower: Self) -> Self {
                Self {
                    config: self.config.or(lower.config),
                    $($name: self.$name.or(lower.$name),)*
                }
            }

            /// Each setting read and checked on its own, or its default.
            pub(super) fn values(&self) -> Result<Values, ConfigError> {
                Ok(Values {
                    $($name: match &self.$name {
                        Some(text) => {
                            let name = stringify!($name).replace('_', "-");
                            ($parse)(&name, text.as_str())?
                        }
                        None => $default,
                    },)*
                })
            }
        }

        /// Every setting's value, typed; `Settings` is assembled from these.
        pub(super) struct Values {
            $(pub $name: $ty,)*
        }

        impl Default for Values {
            fn default() -> Self {
                Self { $($name: $default,)* }
            }
        }

        /// Each setting's file key and variable, for the tests that hold the README to them.
        #[cfg(test)]
        pub(super) const DECLARED: &[(&str, &str)] = &[$((stringify!($name), $env),)*];

        /// How many settings have a default stated as a value by `readme_default`, and those of
        /// them whose stated value does not read as the declared default.
        #[cfg(test)]
        pub(super) fn defaults_unlike(
            readme_default: impl Fn(&str) -> Option<String>,
        ) -> (usize, Vec<String>) {
            let (mut stated, mut unlike) = (0, Vec::new());
            $(
                let name = stringify!($name).replace('_', "-");
                if let Some(text) = readme_default(&name) {
                    stated += 1;
                    let declared: $ty = $default;
                    match ($parse)(&name, &text) {
                        Ok::<$ty, _>(value) if value == declared => {}
                        _ => unlike.push(name),
                    }
                }
            )*
            (stated, unlike)
        }
    };
}
