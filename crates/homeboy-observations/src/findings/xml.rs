//! A small event walker over quick-xml for the XML report formats: elements with their attributes
//! (unescaped), text with entity and character references resolved, and the end of each element (also for
//! `<empty/>` ones). Malformed XML is an error naming the byte position.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// One step through a document.
pub(crate) enum XmlEvent {
    Open {
        name: String,
        attrs: HashMap<String, String>,
    },
    Text(String),
    Close(String),
}

/// Calls `on` for every element start, text run and element end of `bytes`.
pub(crate) fn walk(bytes: &[u8], mut on: impl FnMut(XmlEvent)) -> Result<(), String> {
    let mut reader = Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut saw_root = false;
    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("malformed XML at byte {position}: {e}"))?;
        match event {
            Event::Start(start) => {
                saw_root = true;
                let (name, attrs) = element(&start)?;
                on(XmlEvent::Open { name, attrs });
            }
            Event::Empty(start) => {
                saw_root = true;
                let (name, attrs) = element(&start)?;
                on(XmlEvent::Open {
                    name: name.clone(),
                    attrs,
                });
                on(XmlEvent::Close(name));
            }
            Event::End(end) => {
                on(XmlEvent::Close(
                    String::from_utf8_lossy(end.local_name().as_ref()).into_owned(),
                ));
            }
            Event::Text(text) => {
                let text = text.xml_content().map_err(|e| e.to_string())?;
                on(XmlEvent::Text(text.into_owned()));
            }
            Event::CData(data) => {
                let text = data.decode().map_err(|e| e.to_string())?;
                on(XmlEvent::Text(text.into_owned()));
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = reference.decode().map_err(|e| e.to_string())?;
                        quick_xml::escape::resolve_xml_entity(&name)
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("&{name};"))
                    }
                };
                on(XmlEvent::Text(resolved));
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_root {
        return Err("no XML element found".into());
    }
    Ok(())
}

fn element(start: &BytesStart<'_>) -> Result<(String, HashMap<String, String>), String> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attrs = HashMap::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("malformed attribute in <{name}>: {e}"))?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr
            .unescape_value()
            .map_err(|e| format!("malformed attribute {key} in <{name}>: {e}"))?;
        attrs.insert(key, value.into_owned());
    }
    Ok((name, attrs))
}
