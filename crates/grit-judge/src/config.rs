//! The judge a run uses, as its config file names it.

use crate::openai::{OpenAiJudge, OpenAiJudgeConfig};
use grit_data::rewards::{Judge, Mode, RuleJudge};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which judge scores the answers: `kind = "rule"` (offline, the default) or `kind = "openai"`
/// with the [`OpenAiJudgeConfig`] fields beside it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JudgeConfig {
    /// [`RuleJudge`]: normalized exact match, numbers, yes/no.
    #[default]
    Rule,
    /// [`OpenAiJudge`].
    Openai(OpenAiJudgeConfig),
}

impl JudgeConfig {
    /// Checks the values without building anything (no API key, no cache file needed).
    pub fn validate(&self) -> Result<(), JudgeError> {
        match self {
            JudgeConfig::Rule => Ok(()),
            JudgeConfig::Openai(config) => config.validate().map(|_| ()),
        }
    }

    /// The judge, in the run's `mode` (which replaces the openai config's own). Fixed mode keeps
    /// replies in the config's `cache`, else in `default_cache` (the run's); compat keeps none.
    pub fn build(
        &self,
        mode: Mode,
        default_cache: Option<&Path>,
    ) -> Result<Box<dyn Judge + Send>, JudgeError> {
        Ok(match self {
            JudgeConfig::Rule => Box::new(RuleJudge),
            JudgeConfig::Openai(config) => {
                let cache = match mode {
                    Mode::Fixed => config
                        .cache
                        .clone()
                        .or_else(|| default_cache.map(Path::to_path_buf)),
                    Mode::Compat => config.cache.clone(),
                };
                Box::new(OpenAiJudge::new(OpenAiJudgeConfig {
                    mode,
                    cache,
                    ..config.clone()
                })?)
            }
        })
    }
}

/// Why a judge could not be built.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The environment variable named by `api_key_env` is not set.
    #[error(
        "the judge's API key: environment variable {0} is not set (set it, to an empty value for a server without keys)"
    )]
    MissingApiKey(String),
    /// The environment variable named by `api_key_env` is not valid Unicode.
    #[error("the judge's API key: environment variable {0} is not valid Unicode")]
    ApiKeyNotUnicode(String),
    /// A config value out of range.
    #[error("judge config: {0}")]
    InvalidConfig(String),
    /// The cache file could not be read, truncated or opened for appending.
    #[error("judge cache {path}: {source}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        source: std::io::Error,
    },
    /// A complete line of the cache file is not a cache entry.
    #[error("judge cache {path}, line {line}: {message}")]
    CacheLine {
        /// The cache file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use grit_data::rewards::JudgeQuery;

    #[test]
    fn rule_is_the_default_and_judges_offline() {
        #[derive(Deserialize)]
        struct Run {
            #[serde(default)]
            judge: JudgeConfig,
        }
        let run: Run = toml::from_str("").unwrap();
        assert_eq!(run.judge, JudgeConfig::Rule);
        let config: JudgeConfig = toml::from_str("kind = \"rule\"").unwrap();
        assert_eq!(config, JudgeConfig::Rule);
        let mut judge = config.build(Mode::Fixed, None).unwrap();
        let query = JudgeQuery {
            question: "How many cats?".into(),
            reference: "2".into(),
            prediction: "two cats".into(),
        };
        assert_eq!(judge.judge(&query).unwrap(), 1.0);
    }

    #[test]
    fn openai_reads_from_toml_with_defaults() {
        let config: JudgeConfig = toml::from_str(
            "kind = \"openai\"\nbase_url = \"http://localhost:8000/v1\"\nconcurrency = 4\ncache = \"judge-cache.jsonl\"\n",
        )
        .unwrap();
        let expected = OpenAiJudgeConfig {
            base_url: "http://localhost:8000/v1".into(),
            concurrency: 4,
            cache: Some("judge-cache.jsonl".into()),
            ..OpenAiJudgeConfig::default()
        };
        assert_eq!(config, JudgeConfig::Openai(expected));
        let defaults = OpenAiJudgeConfig::default();
        assert_eq!(defaults.model, "gpt-4o");
        assert_eq!(defaults.api_key_env, "OPENAI_API_KEY");
        assert_eq!(defaults.temperature, Some(0.0));
        assert_eq!(defaults.mode, Mode::Fixed);
    }

    #[test]
    fn unknown_fields_and_kinds_are_rejected() {
        let typo = toml::from_str::<JudgeConfig>("kind = \"openai\"\nmodell = \"gpt-4o\"\n");
        assert!(typo.unwrap_err().to_string().contains("modell"));
        let kind = toml::from_str::<JudgeConfig>("kind = \"claude\"\n");
        assert!(kind.unwrap_err().to_string().contains("claude"));
    }

    #[test]
    fn a_missing_key_variable_is_named() {
        let config = JudgeConfig::Openai(OpenAiJudgeConfig {
            api_key_env: "GRIT_JUDGE_TEST_KEY_THAT_IS_NEVER_SET".into(),
            ..OpenAiJudgeConfig::default()
        });
        let error = config.build(Mode::Compat, None).err().unwrap();
        assert!(matches!(error, JudgeError::MissingApiKey(_)));
        assert!(
            error
                .to_string()
                .contains("GRIT_JUDGE_TEST_KEY_THAT_IS_NEVER_SET")
        );
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let invalid = |config: OpenAiJudgeConfig| {
            let error = OpenAiJudge::with_api_key(config, String::new()).err();
            assert!(matches!(error, Some(JudgeError::InvalidConfig(_))));
        };
        invalid(OpenAiJudgeConfig {
            concurrency: 0,
            ..OpenAiJudgeConfig::default()
        });
        invalid(OpenAiJudgeConfig {
            timeout_s: 0.0,
            ..OpenAiJudgeConfig::default()
        });
        invalid(OpenAiJudgeConfig {
            base_url: "api.openai.com/v1".into(),
            ..OpenAiJudgeConfig::default()
        });
        invalid(OpenAiJudgeConfig {
            temperature: Some(f64::NAN),
            ..OpenAiJudgeConfig::default()
        });
    }
}
