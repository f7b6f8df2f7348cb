//! `dataFrom.find` matching done in the plugin: the name regexp (RE2 syntax,
//! via `regex-lite`), the path prefix and exact tag values. Backends whose
//! listing filters are looser (prefix matches, no regexp) apply this to every
//! listed item.

use crate::{FindRequest, ProviderError, Result};

/// A compiled [`FindRequest`].
#[derive(Debug, Clone)]
pub struct Filter {
    name: Option<regex_lite::Regex>,
    path: Option<String>,
    tags: Vec<(String, String)>,
}

impl Filter {
    /// An invalid regexp is an error naming `find.name.regexp`.
    pub fn new(find: &FindRequest) -> Result<Filter> {
        let name = match find.name_regexp.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => Some(regex_lite::Regex::new(r).map_err(|e| {
                ProviderError::internal(format!(
                    "find.name.regexp is not a valid regular expression: {e}"
                ))
            })?),
            None => None,
        };
        let path = find.path.clone().filter(|p| !p.is_empty());
        Ok(Filter {
            name,
            path,
            tags: find.tags.clone(),
        })
    }

    /// True when `name` starts with the path, matches the regexp, and `tags`
    /// holds every requested tag with exactly the requested value.
    pub fn matches<'a>(
        &self,
        name: &str,
        tags: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> bool {
        self.path.as_deref().is_none_or(|p| name.starts_with(p))
            && self.name.as_ref().is_none_or(|re| re.is_match(name))
            && self
                .tags
                .iter()
                .all(|(k, v)| tags.clone().into_iter().any(|(tk, tv)| tk == k && tv == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(re: Option<&str>, path: Option<&str>, tags: &[(&str, &str)]) -> FindRequest {
        FindRequest {
            name_regexp: re.map(Into::into),
            path: path.map(Into::into),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn name_path_and_exact_tags() {
        let f = Filter::new(&req(Some("^app-"), Some("app-"), &[("env", "prod")])).unwrap();
        assert!(f.matches("app-db", [("env", "prod"), ("team", "a")]));
        assert!(!f.matches("app-db", [("env", "production")]));
        assert!(!f.matches("web", [("env", "prod")]));
        assert!(
            Filter::new(&req(None, None, &[]))
                .unwrap()
                .matches("anything", [])
        );
        assert!(Filter::new(&req(Some("("), None, &[])).is_err());
    }
}
