//! Where a served model is: the `kserve+http://host:port/models/<name>` address of a victim.

use std::fmt;
use std::str::FromStr;

use crate::error::{RemoteError, Result};

/// A model behind an Open Inference Protocol server, written
/// `kserve+http://host[:port][/prefix]/models/<name>[/versions/<v>][?key=value&...]`
/// (`kserve+https` for TLS). Query keys: `memberships=<output>` and `labels=<output>` name
/// the outputs to read (found from the metadata otherwise), `clusters=<k>` gives k when the
/// metadata does not.
///
/// ```
/// use advclust_remote::KServeTarget;
/// let t: KServeTarget = "kserve+http://127.0.0.1:8080/models/gmm?memberships=predict_proba"
///     .parse()
///     .unwrap();
/// assert_eq!(t.base_url, "http://127.0.0.1:8080");
/// assert_eq!(t.model, "gmm");
/// assert_eq!(t.model_path(), "/v2/models/gmm");
/// assert_eq!(t.memberships_output.as_deref(), Some("predict_proba"));
/// assert!("http://127.0.0.1:8080/models/gmm".parse::<KServeTarget>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KServeTarget {
    /// Scheme, host, port and any path prefix, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Model version, if one is pinned.
    pub version: Option<String>,
    /// The output holding memberships, if named.
    pub memberships_output: Option<String>,
    /// The output holding cluster ids, if named.
    pub labels_output: Option<String>,
    /// Number of clusters, when the metadata does not say.
    pub clusters: Option<usize>,
}

/// The scheme prefix that marks a model-server victim.
pub const SCHEME_PREFIX: &str = "kserve+";

impl KServeTarget {
    /// The model's path under the server: `/v2/models/<name>[/versions/<v>]`.
    pub fn model_path(&self) -> String {
        match &self.version {
            Some(v) => format!("/v2/models/{}/versions/{v}", self.model),
            None => format!("/v2/models/{}", self.model),
        }
    }

    /// Full URL of `path` (which starts with `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl FromStr for KServeTarget {
    type Err = RemoteError;

    fn from_str(address: &str) -> Result<Self> {
        let bad = |reason: &str| RemoteError::BadTarget {
            address: address.to_string(),
            reason: reason.to_string(),
        };
        let rest = address
            .strip_prefix(SCHEME_PREFIX)
            .ok_or_else(|| bad("must start with kserve+http:// or kserve+https://"))?;
        let (scheme, rest) = if let Some(r) = rest.strip_prefix("http://") {
            ("http", r)
        } else if let Some(r) = rest.strip_prefix("https://") {
            ("https", r)
        } else {
            return Err(bad("must start with kserve+http:// or kserve+https://"));
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = path
            .split_once('/')
            .ok_or_else(|| bad("no /models/<name> path"))?;
        if authority.is_empty()
            || authority
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '@' | '#'))
        {
            return Err(bad("missing or invalid host"));
        }
        let segments: Vec<&str> = path.split('/').collect();
        let at = segments
            .iter()
            .rposition(|s| *s == "models")
            .ok_or_else(|| bad("no /models/<name> path"))?;
        let prefix = &segments[..at];
        if prefix.iter().any(|s| !valid_name(s)) {
            return Err(bad("invalid path prefix"));
        }
        let (model, version) = match &segments[at + 1..] {
            [m] => (*m, None),
            [m, "versions", v] => (*m, Some(*v)),
            _ => return Err(bad("the path must end in /models/<name>[/versions/<v>]")),
        };
        if !valid_name(model) || version.is_some_and(|v| !valid_name(v)) {
            return Err(bad(
                "model names and versions are letters, digits, '-', '_' and '.'",
            ));
        }
        let mut base_url = format!("{scheme}://{authority}");
        for p in prefix {
            base_url.push('/');
            base_url.push_str(p);
        }
        let mut target = KServeTarget {
            base_url,
            model: model.to_string(),
            version: version.map(str::to_string),
            memberships_output: None,
            labels_output: None,
            clusters: None,
        };
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad("query items are key=value"))?;
            if !valid_name(value) {
                return Err(bad("query values are letters, digits, '-', '_' and '.'"));
            }
            match key {
                "memberships" => target.memberships_output = Some(value.to_string()),
                "labels" => target.labels_output = Some(value.to_string()),
                "clusters" => {
                    let k: usize = value
                        .parse()
                        .map_err(|_| bad("clusters must be a number"))?;
                    if !(2..=100_000).contains(&k) {
                        return Err(bad("clusters must be between 2 and 100000"));
                    }
                    target.clusters = Some(k);
                }
                _ => return Err(bad("unknown query key (memberships, labels, clusters)")),
            }
        }
        Ok(target)
    }
}

impl TryFrom<String> for KServeTarget {
    type Error = RemoteError;

    /// Parses (and so validates) a saved address.
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<KServeTarget> for String {
    fn from(t: KServeTarget) -> String {
        t.to_string()
    }
}

impl fmt::Display for KServeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME_PREFIX}{}", self.base_url)?;
        let path = self.model_path();
        f.write_str(path.strip_prefix("/v2").unwrap_or(&path))?;
        let mut sep = '?';
        let mut item = |f: &mut fmt::Formatter<'_>, k: &str, v: &dyn fmt::Display| {
            let r = write!(f, "{sep}{k}={v}");
            sep = '&';
            r
        };
        if let Some(o) = &self.memberships_output {
            item(f, "memberships", o)?;
        }
        if let Some(o) = &self.labels_output {
            item(f, "labels", o)?;
        }
        if let Some(k) = self.clusters {
            item(f, "clusters", &k)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_back() {
        for a in [
            "kserve+http://127.0.0.1:8080/models/cc",
            "kserve+https://example.org/serving/v1/models/cc/versions/3?memberships=probs&clusters=10",
            "kserve+http://localhost:9000/models/gmm?labels=predict",
        ] {
            let t: KServeTarget = a.parse().unwrap();
            assert_eq!(t.to_string(), a);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<KServeTarget>(&json).unwrap(), t);
        }
        assert!(serde_json::from_str::<KServeTarget>("\"kserve+http://h/models/\"").is_err());
        let t: KServeTarget = "kserve+https://example.org/serving/v1/models/cc/versions/3"
            .parse()
            .unwrap();
        assert_eq!(t.base_url, "https://example.org/serving/v1");
        assert_eq!(
            t.url(&t.model_path()),
            "https://example.org/serving/v1/v2/models/cc/versions/3"
        );
    }

    #[test]
    fn bad_addresses_are_typed_errors() {
        for a in [
            "kserve+ftp://h/models/m",
            "kserve+http:///models/m",
            "kserve+http://h",
            "kserve+http://h/models/",
            "kserve+http://h/models/a b",
            "kserve+http://h/models/m/extra",
            "kserve+http://h/models/m?clusters=1",
            "kserve+http://h/models/m?clusters=x",
            "kserve+http://h/models/m?colour=red",
            "kserve+http://u@h/models/m",
        ] {
            assert!(
                matches!(
                    a.parse::<KServeTarget>(),
                    Err(RemoteError::BadTarget { .. })
                ),
                "{a}"
            );
        }
    }
}
