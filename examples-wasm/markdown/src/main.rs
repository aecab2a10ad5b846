//! `markdown.wasm`: renders Markdown to HTML with pulldown-cmark, a realistic pure-computation
//! task.

use pulldown_cmark::{Options, Parser, html};

/// Renders `text` (CommonMark plus tables, footnotes, strikethrough and task lists) to HTML.
#[wasq_guest::task]
fn render(text: String) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS;
    let mut out = String::with_capacity(text.len() * 3 / 2);
    html::push_html(&mut out, Parser::new_ext(&text, options));
    out
}

wasq_guest::main!(render);
