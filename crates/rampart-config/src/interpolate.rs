//! `${VAR}` interpolation of config text.

/// Replaces `${NAME}` with `env(NAME)`. `$${` stands for a literal `${`.
/// Returns the text and the problems found as (line, message): undefined
/// variables, invalid names, unterminated references. Every problem is
/// reported, not just the first.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (String, Vec<(usize, String)>) {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    for (idx, line) in text.split_inclusive('\n').enumerate() {
        let lineno = idx + 1;
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("${") {
                let Some(end) = tail.find('}') else {
                    problems.push((
                        lineno,
                        "unterminated ${ (write $${ for a literal)".to_owned(),
                    ));
                    out.push_str(after);
                    rest = "";
                    continue;
                };
                let name = &tail[..end];
                let valid = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !name.as_bytes()[0].is_ascii_digit();
                if !valid {
                    problems.push((lineno, format!("invalid variable name ${{{name}}}")));
                } else if let Some(value) = env(name) {
                    out.push_str(&value);
                } else {
                    problems.push((
                        lineno,
                        format!("environment variable {name} is not defined"),
                    ));
                }
                rest = &tail[end + 1..];
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
    }
    (out, problems)
}
