//! Reading the few fields a provider needs from an XML response (AWS query
//! protocol answers, S3-style errors) without an XML parser.
//!
//! [`text`] returns the text of the first `<name>` element at any depth, with
//! the five predefined entities and numeric character references decoded.
//! It does not understand CDATA, comments that hide elements, or namespaces
//! prefixes; backends that answer in such XML need a real parser.

/// The unescaped text of the first element called `name` (`<name>` or
/// `<name attr="..">`), or `None` if there is none or it is not closed.
pub fn text(xml: &str, name: &str) -> Option<String> {
    let mut rest = xml;
    loop {
        let start = rest.find('<')?;
        rest = &rest[start + 1..];
        let Some(after) = rest.strip_prefix(name) else {
            continue;
        };
        match after.chars().next()? {
            '>' => rest = &after[1..],
            c if c.is_whitespace() => rest = &after[after.find('>')? + 1..],
            _ => continue,
        }
        let end = rest.find(&format!("</{name}>"))?;
        return Some(unescape(&rest[..end]));
    }
}

/// Decodes `&lt; &gt; &amp; &quot; &apos;` and `&#NN;` / `&#xHH;`; anything
/// else is kept as written.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').filter(|&j| j <= 10).and_then(|j| {
            let c = match &rest[1..j] {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                n => {
                    let code = match n.strip_prefix("#x").or_else(|| n.strip_prefix("#X")) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => n.strip_prefix('#')?.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, j))
        });
        match decoded {
            Some((c, j)) => {
                out.push(c);
                rest = &rest[j + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STS: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <SessionToken>FQo&amp;Gx&#x2F;y&#61;</SessionToken>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <Expiration>2026-01-01T01:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn first_element_text() {
        assert_eq!(text(STS, "AccessKeyId").as_deref(), Some("ASIAEXAMPLE"));
        assert_eq!(text(STS, "SessionToken").as_deref(), Some("FQo&Gx/y="));
        assert_eq!(
            text(STS, "Credentials").map(|c| c.contains("ASIAEXAMPLE")),
            Some(true)
        );
        // A longer name sharing the prefix is not a match.
        assert_eq!(
            text("<Codes>x</Codes><Code a=\"1\">y</Code>", "Code").as_deref(),
            Some("y")
        );
        assert_eq!(text(STS, "Missing"), None);
        assert_eq!(text("<Code>unclosed", "Code"), None);
    }

    #[test]
    fn entities() {
        assert_eq!(
            unescape("a &lt;b&gt; &quot;c&quot; &apos;d&apos; &#65;&#x42;"),
            "a <b> \"c\" 'd' AB"
        );
        assert_eq!(
            unescape("fish & chips &bogus; &#xZZ;"),
            "fish & chips &bogus; &#xZZ;"
        );
    }
}
