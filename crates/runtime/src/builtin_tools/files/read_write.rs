//! Reading, writing and editing one file: `read_file`, `write_file` and `edit_file`.

use super::definitions::EditFileArgs;
use super::workspace::{
    Resolved, Workspace, io_error, not_found, outside, regular_file, tool_error,
};
use crate::Error;
use crate::tool::ToolOutput;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write as _};

impl Workspace {
    pub(super) fn read_file(
        &self,
        file_path: &str,
        offset: Option<usize>,
        limit: Option<usize>,
    ) -> Result<ToolOutput, Error> {
        let file = self.resolve(file_path)?;
        if !file.exists {
            return Err(not_found(&file.shown));
        }
        regular_file(&file)?;
        let offset = offset.unwrap_or(0);
        let limit = limit.unwrap_or(self.limits.default_read_lines);
        if limit == 0 {
            return Err(tool_error("limit must be at least 1 line"));
        }
        let handle = fs::File::open(&file.host).map_err(|error| io_error(&file.shown, &error))?;
        let mut reader = BufReader::new(handle);
        if reader
            .fill_buf()
            .map_err(|error| io_error(&file.shown, &error))?
            .is_empty()
        {
            return Ok(ToolOutput::text(format!(
                "System reminder: the file '{}' exists but is empty.",
                file.shown
            )));
        }
        if looks_binary(reader.buffer()) {
            return Err(tool_error(format!(
                "'{}' is a binary file; read_file reads text files only",
                file.shown
            )));
        }
        // Lines are read one at a time with a cap, so a huge file or a huge line costs no more
        // memory than the answer.
        let max_line_bytes = self.limits.line_chars.saturating_mul(4).max(4);
        let mut line = Vec::new();
        let mut number = 0usize;
        let mut answer = String::new();
        let mut next_offset = None;
        while let Some(cut) = read_capped_line(&mut reader, max_line_bytes, &mut line)
            .map_err(|error| io_error(&file.shown, &error))?
        {
            number += 1;
            if number <= offset {
                continue;
            }
            if number > offset + limit || answer.len() >= self.limits.output_bytes {
                next_offset = Some(number - 1);
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            let (text, chars_cut) = cut_chars(text, self.limits.line_chars);
            let _ = write!(answer, "{number:>6}\t{text}");
            if cut || chars_cut {
                answer.push_str(" [line truncated]");
            }
            answer.push('\n');
        }
        if number <= offset {
            return Err(tool_error(format!(
                "offset {offset} is past the end of '{}', which has {number} lines",
                file.shown
            )));
        }
        if let Some(next) = next_offset {
            let _ = write!(
                answer,
                "[truncated: the file has more lines; call read_file with offset={next} to read on]"
            );
        }
        Ok(ToolOutput::text(answer))
    }

    pub(super) fn write_file(&self, file_path: &str, content: &str) -> Result<ToolOutput, Error> {
        let file = self.resolve(file_path)?;
        if file.exists {
            return Err(tool_error(format!(
                "Cannot write to '{}' because it already exists. Read it and then change it \
                 with edit_file, or write to a new path.",
                file.shown
            )));
        }
        if file.shown == "/" {
            return Err(tool_error(
                "give a file path such as /notes/a.md, not the root",
            ));
        }
        if content.len() as u64 > self.limits.file_bytes {
            return Err(tool_error(format!(
                "the content is {} bytes, more than the {} bytes a file may hold here; \
                 write it in parts to several files",
                content.len(),
                self.limits.file_bytes
            )));
        }
        if let Some(parent) = file.host.parent() {
            fs::create_dir_all(parent).map_err(|error| io_error(&file.shown, &error))?;
            // Checked again now that the folders exist, in case one appeared as a link meanwhile.
            let parent = fs::canonicalize(parent).map_err(|error| io_error(&file.shown, &error))?;
            if !parent.starts_with(&self.root) {
                return Err(outside(&file.shown));
            }
        }
        // `create_new` is O_EXCL: it fails on anything already there, a link included, and
        // never follows one.
        let mut handle = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file.host)
            .map_err(|error| io_error(&file.shown, &error))?;
        handle
            .write_all(content.as_bytes())
            .map_err(|error| io_error(&file.shown, &error))?;
        Ok(ToolOutput::text(format!(
            "Wrote {} bytes to '{}'.",
            content.len(),
            file.shown
        )))
    }

    pub(super) fn edit_file(&self, args: &EditFileArgs) -> Result<ToolOutput, Error> {
        let file = self.resolve(&args.file_path)?;
        if !file.exists {
            return Err(not_found(&file.shown));
        }
        regular_file(&file)?;
        if args.old_string.is_empty() {
            return Err(tool_error(
                "old_string is empty; give the exact text to replace (to create a file, use write_file)",
            ));
        }
        if args.old_string == args.new_string {
            return Err(tool_error(
                "old_string and new_string are the same; nothing would change",
            ));
        }
        let text = self.read_text(&file)?;
        let count = text.matches(args.old_string.as_str()).count();
        if count == 0 {
            return Err(tool_error(format!(
                "old_string was not found in '{}'. It must match the file exactly, including \
                 spaces and indentation, without the line numbers read_file adds; read the file \
                 again and copy the text from it.",
                file.shown
            )));
        }
        if count > 1 && !args.replace_all {
            return Err(tool_error(format!(
                "old_string occurs {count} times in '{}'. Add surrounding lines to make it \
                 unique, or set replace_all to true to replace every occurrence.",
                file.shown
            )));
        }
        let edited = if args.replace_all {
            text.replace(args.old_string.as_str(), &args.new_string)
        } else {
            text.replacen(args.old_string.as_str(), &args.new_string, 1)
        };
        // `host` is canonical here (the file exists), so this writes the checked file itself.
        fs::write(&file.host, edited).map_err(|error| io_error(&file.shown, &error))?;
        Ok(ToolOutput::text(format!(
            "Replaced {count} occurrence{} in '{}'.",
            if count == 1 { "" } else { "s" },
            file.shown
        )))
    }

    /// A whole text file, for editing.
    fn read_text(&self, file: &Resolved) -> Result<String, Error> {
        let handle = fs::File::open(&file.host).map_err(|error| io_error(&file.shown, &error))?;
        let mut bytes = Vec::new();
        handle
            .take(self.limits.file_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| io_error(&file.shown, &error))?;
        if bytes.len() as u64 > self.limits.file_bytes {
            return Err(tool_error(format!(
                "'{}' is larger than {} bytes, too large to edit here",
                file.shown, self.limits.file_bytes
            )));
        }
        if looks_binary(&bytes) {
            return Err(tool_error(format!(
                "'{}' is a binary file; edit_file edits text files only",
                file.shown
            )));
        }
        String::from_utf8(bytes).map_err(|_| {
            tool_error(format!(
                "'{}' is not UTF-8 text; edit_file edits UTF-8 text files only",
                file.shown
            ))
        })
    }
}

/// Text files have no NUL bytes near the start; binary ones nearly always do.
pub(super) fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

/// The first `max` characters of `text`, and whether anything was cut.
pub(super) fn cut_chars(text: &str, max: usize) -> (&str, bool) {
    match text.char_indices().nth(max) {
        Some((end, _)) => (&text[..end], true),
        None => (text, false),
    }
}

/// Reads one line into `line`, keeping at most `max` bytes of it and skipping the rest.
/// `None` at the end of the file; otherwise whether the line was cut.
pub(super) fn read_capped_line(
    reader: &mut impl BufRead,
    max: usize,
    line: &mut Vec<u8>,
) -> io::Result<Option<bool>> {
    line.clear();
    let mut any = false;
    let mut cut = false;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(any.then_some(cut));
        }
        any = true;
        let (chunk, done) = match buffer.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&buffer[..=end], true),
            None => (buffer, false),
        };
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        if done {
            return Ok(Some(cut));
        }
    }
}
