//! Minimal drawing on RGB images (`Array3<u8>`, `[row, col, channel]`) for figure
//! panels: filled rectangles and text in a built-in 5×7 pixel font (upper-case letters,
//! digits and `. , : - + = ( ) / % ×`; lower case is drawn as upper case, anything else
//! as a blank).

use ndarray::Array3;

/// Rows of each glyph, 5 bits per row (bit 4 = leftmost column).
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [30, 17, 17, 17, 17, 17, 30],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 10, 4, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '+' => [0, 4, 4, 31, 4, 4, 0],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '/' => [1, 1, 2, 4, 8, 16, 16],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        '×' => [0, 17, 10, 4, 10, 17, 0],
        _ => [0; 7],
    }
}

/// Width in pixels of `text` drawn at `scale` (6 columns per character, the last blank).
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * 6 * scale
}

/// Draws `text` with its top-left corner at `(row, col)`, each font pixel a
/// `scale × scale` square; pixels outside the image are skipped.
pub fn text(image: &mut Array3<u8>, (row, col): (usize, usize), text: &str, colour: [u8; 3], scale: usize) {
    for (k, c) in text.chars().enumerate() {
        for (dy, bits) in glyph(c).iter().enumerate() {
            for dx in 0..5 {
                if bits >> (4 - dx) & 1 == 1 {
                    let (r, c0) = (row + dy * scale, col + (6 * k + dx) * scale);
                    fill_rect(image, (r, c0), (scale, scale), colour);
                }
            }
        }
    }
}

/// Fills the rectangle of `size = (rows, cols)` at `(row, col)`, clipped to the image.
pub fn fill_rect(image: &mut Array3<u8>, (row, col): (usize, usize), (rows, cols): (usize, usize), colour: [u8; 3]) {
    let (h, w, ch) = image.dim();
    for r in row..(row + rows).min(h) {
        for c in col..(col + cols).min(w) {
            for (k, &v) in colour.iter().enumerate().take(ch) {
                image[[r, c, k]] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_sets_pixels_and_clips() {
        let mut img = Array3::<u8>::zeros((20, 20, 3));
        text(&mut img, (1, 1), "L1", [255, 0, 0], 1);
        // 'L' has its left column set on all 7 rows.
        assert!((1..8).all(|r| img[[r, 1, 0]] == 255));
        assert_eq!(img[[1, 2, 0]], 0);
        text(&mut img, (15, 15), "WWW", [0, 255, 0], 2); // mostly outside: no panic
        assert_eq!(text_width("ab", 2), 24);
    }
}
