//! Errors as one line, for job errors and log fields.

/// `outer: inner: root`: an error and its sources on one line, as log fields and job errors show them. A
/// source that says what the one before it said (HTTP clients wrap their errors in themselves) is left
/// out.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut last = text.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if said != last {
            text.push_str(": ");
            text.push_str(&said);
            last = said;
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |source, &text| {
                Some(Layer {
                    text,
                    source: source.map(Box::new),
                })
            })
            .expect("at least one layer")
    }

    #[test]
    fn a_chain_says_each_cause_once() {
        let err = layers(&[
            "could not reach URL",
            "sending request",
            "sending request",
            "refused",
        ]);
        assert_eq!(
            error_chain(&err),
            "could not reach URL: sending request: refused"
        );
    }
}
