//! Plane geometry in normalised image coordinates: points, boxes, polygons, segments, headings.
//!
//! Contract: image coordinates run 0..1 left→right (`x`) and top→bottom (`y`), so `y` grows
//! downwards. Headings are in degrees clockwise from image "up": 0 = up, 90 = right, 180 = down,
//! 270 = left, like a compass drawn on the screen. Everything here is allocation-free.

use serde::{Deserialize, Serialize};

/// Tolerance for "on the line" tests. Normalised units, so 1e-9 is far below a pixel.
pub const EPS: f64 = 1e-9;

/// A point (or a vector) in normalised image coordinates, or in metres on the ground plane.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Point {
    /// Horizontal coordinate.
    pub x: f64,
    /// Vertical coordinate (down in the image).
    pub y: f64,
}

impl Point {
    /// A point from its coordinates.
    pub const fn new(x: f64, y: f64) -> Self {
        Point { x, y }
    }

    /// Euclidean distance to `o`.
    pub fn dist(self, o: Point) -> f64 {
        (self - o).norm()
    }

    /// Length of the vector.
    pub fn norm(self) -> f64 {
        self.x.hypot(self.y)
    }

    /// Heading of this vector in degrees (0 = up, clockwise), or `None` for a zero vector.
    pub fn heading_deg(self) -> Option<f64> {
        if self.norm() < EPS {
            return None;
        }
        // atan2(x, -y): up (0,-1) → 0°, right (1,0) → 90°.
        Some(normalise_deg(self.x.atan2(-self.y).to_degrees()))
    }

    /// The unit vector of a heading (inverse of [`Point::heading_deg`]).
    pub fn from_heading_deg(deg: f64) -> Point {
        let r = deg.to_radians();
        Point::new(r.sin(), -r.cos())
    }
}

impl std::ops::Sub for Point {
    type Output = Point;
    fn sub(self, o: Point) -> Point {
        Point::new(self.x - o.x, self.y - o.y)
    }
}

impl std::ops::Add for Point {
    type Output = Point;
    fn add(self, o: Point) -> Point {
        Point::new(self.x + o.x, self.y + o.y)
    }
}

impl std::ops::Mul<f64> for Point {
    type Output = Point;
    fn mul(self, k: f64) -> Point {
        Point::new(self.x * k, self.y * k)
    }
}

/// Cross product (z component) of `a` and `b`.
pub fn cross(a: Point, b: Point) -> f64 {
    a.x * b.y - a.y * b.x
}

/// Normalises an angle to [0, 360).
pub fn normalise_deg(d: f64) -> f64 {
    let r = d.rem_euclid(360.0);
    // rem_euclid can return 360.0 for tiny negative inputs through rounding.
    if r >= 360.0 {
        0.0
    } else {
        r
    }
}

/// Smallest absolute difference of two headings, in [0, 180].
pub fn angle_diff_deg(a: f64, b: f64) -> f64 {
    let d = normalise_deg(a - b);
    if d > 180.0 {
        360.0 - d
    } else {
        d
    }
}

/// An axis-aligned box in normalised image coordinates, `x1 <= x2`, `y1 <= y2`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BBox {
    /// Left.
    pub x1: f32,
    /// Top.
    pub y1: f32,
    /// Right.
    pub x2: f32,
    /// Bottom.
    pub y2: f32,
}

impl BBox {
    /// A box from its corners (not reordered: callers pass x1 <= x2, y1 <= y2).
    pub const fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        BBox { x1, y1, x2, y2 }
    }

    /// A box from its centre and size.
    pub fn from_cxcywh(cx: f64, cy: f64, w: f64, h: f64) -> Self {
        BBox {
            x1: (cx - w / 2.0) as f32,
            y1: (cy - h / 2.0) as f32,
            x2: (cx + w / 2.0) as f32,
            y2: (cy + h / 2.0) as f32,
        }
    }

    /// Width (0 for a degenerate box).
    pub fn width(&self) -> f64 {
        f64::from(self.x2 - self.x1).max(0.0)
    }

    /// Height (0 for a degenerate box).
    pub fn height(&self) -> f64 {
        f64::from(self.y2 - self.y1).max(0.0)
    }

    /// Area.
    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }

    /// Centre point.
    pub fn centre(&self) -> Point {
        Point::new(
            f64::from(self.x1 + self.x2) / 2.0,
            f64::from(self.y1 + self.y2) / 2.0,
        )
    }

    /// The ground point: bottom-centre, where the object touches the ground.
    pub fn ground_point(&self) -> Point {
        Point::new(f64::from(self.x1 + self.x2) / 2.0, f64::from(self.y2))
    }

    /// Intersection over union; 0 for disjoint or degenerate boxes.
    pub fn iou(&self, o: &BBox) -> f64 {
        let iw = f64::from(self.x2.min(o.x2) - self.x1.max(o.x1));
        let ih = f64::from(self.y2.min(o.y2) - self.y1.max(o.y1));
        if iw <= 0.0 || ih <= 0.0 {
            return 0.0;
        }
        let inter = iw * ih;
        let union = self.area() + o.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// Whether all coordinates are finite and ordered.
    pub fn is_valid(&self) -> bool {
        [self.x1, self.y1, self.x2, self.y2]
            .iter()
            .all(|v| v.is_finite())
            && self.x1 <= self.x2
            && self.y1 <= self.y2
    }
}

/// How two segments meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentContact {
    /// They do not meet.
    None,
    /// They meet only at an endpoint or overlap collinearly: touching, not crossing.
    Touch,
    /// They cross at one interior point of both.
    Proper,
}

/// Sign of the turn a→b→c: +1, -1 or 0 (collinear within [`EPS`]).
fn orient(a: Point, b: Point, c: Point) -> i8 {
    let v = cross(b - a, c - a);
    if v > EPS {
        1
    } else if v < -EPS {
        -1
    } else {
        0
    }
}

/// Whether `p`, known to be collinear with segment `a..b`, lies within its extent.
fn on_segment(a: Point, b: Point, p: Point) -> bool {
    p.x >= a.x.min(b.x) - EPS
        && p.x <= a.x.max(b.x) + EPS
        && p.y >= a.y.min(b.y) - EPS
        && p.y <= a.y.max(b.y) + EPS
}

/// Classifies how segments `p1..p2` and `q1..q2` meet.
pub fn segment_contact(p1: Point, p2: Point, q1: Point, q2: Point) -> SegmentContact {
    let o1 = orient(p1, p2, q1);
    let o2 = orient(p1, p2, q2);
    let o3 = orient(q1, q2, p1);
    let o4 = orient(q1, q2, p2);
    if o1 * o2 < 0 && o3 * o4 < 0 {
        return SegmentContact::Proper;
    }
    let touches = (o1 == 0 && on_segment(p1, p2, q1))
        || (o2 == 0 && on_segment(p1, p2, q2))
        || (o3 == 0 && on_segment(q1, q2, p1))
        || (o4 == 0 && on_segment(q1, q2, p2));
    if touches {
        SegmentContact::Touch
    } else {
        SegmentContact::None
    }
}

/// Which side of the directed line a→b a point lies on, as seen on the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// On your left when walking from a to b on the image.
    Left,
    /// On your right when walking from a to b on the image.
    Right,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// Side of `p` relative to the directed line a→b, or `None` when on it.
pub fn side_of(a: Point, b: Point, p: Point) -> Option<Side> {
    // With y pointing down, a positive cross product is a clockwise turn on screen, i.e. right.
    match orient(a, b, p) {
        1 => Some(Side::Right),
        -1 => Some(Side::Left),
        _ => None,
    }
}

/// A simple polygon (not self-intersecting), vertices in order, implicitly closed.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    pts: Vec<Point>,
    // Bounding box for a cheap reject before the edge loop.
    min: Point,
    max: Point,
}

impl Polygon {
    /// A polygon from at least three vertices; `None` when fewer or not finite.
    pub fn new(pts: Vec<Point>) -> Option<Polygon> {
        if pts.len() < 3 || pts.iter().any(|p| !p.x.is_finite() || !p.y.is_finite()) {
            return None;
        }
        let mut min = Point::new(f64::INFINITY, f64::INFINITY);
        let mut max = Point::new(f64::NEG_INFINITY, f64::NEG_INFINITY);
        for p in &pts {
            min = Point::new(min.x.min(p.x), min.y.min(p.y));
            max = Point::new(max.x.max(p.x), max.y.max(p.y));
        }
        Some(Polygon { pts, min, max })
    }

    /// The vertices.
    pub fn points(&self) -> &[Point] {
        &self.pts
    }

    /// The edges as (start, end) pairs, closing edge included.
    pub fn edges(&self) -> impl Iterator<Item = (Point, Point)> + '_ {
        let n = self.pts.len();
        (0..n).map(move |i| (self.pts[i], self.pts[(i + 1) % n]))
    }

    /// Point-in-polygon by ray casting (even-odd). Points exactly on an edge may go either way.
    pub fn contains(&self, p: Point) -> bool {
        if p.x < self.min.x || p.x > self.max.x || p.y < self.min.y || p.y > self.max.y {
            return false;
        }
        let mut inside = false;
        for (a, b) in self.edges() {
            if (a.y > p.y) != (b.y > p.y) {
                let x_at = a.x + (p.y - a.y) * (b.x - a.x) / (b.y - a.y);
                if p.x < x_at {
                    inside = !inside;
                }
            }
        }
        inside
    }

    /// How many edges the segment `p..q` properly crosses. A step whose both ends are outside
    /// but which crosses two or more edges passed through the polygon between two frames.
    pub fn proper_crossings(&self, p: Point, q: Point) -> usize {
        let lo = Point::new(p.x.min(q.x), p.y.min(q.y));
        let hi = Point::new(p.x.max(q.x), p.y.max(q.y));
        if hi.x < self.min.x || lo.x > self.max.x || hi.y < self.min.y || lo.y > self.max.y {
            return 0;
        }
        self.edges()
            .filter(|&(a, b)| segment_contact(p, q, a, b) == SegmentContact::Proper)
            .count()
    }

    /// Whether the polygon is simple: no two non-adjacent edges meet, no adjacent ones overlap.
    pub fn is_simple(&self) -> bool {
        let n = self.pts.len();
        let edges: Vec<(Point, Point)> = self.edges().collect();
        for i in 0..n {
            for j in (i + 1)..n {
                let adjacent = j == i + 1 || (i == 0 && j == n - 1);
                let c = segment_contact(edges[i].0, edges[i].1, edges[j].0, edges[j].1);
                if adjacent {
                    // Adjacent edges share a vertex; they must not fold back onto each other.
                    let (a, b, c2) = if j == i + 1 {
                        (edges[i].0, edges[i].1, edges[j].1)
                    } else {
                        (edges[j].0, edges[j].1, edges[i].1)
                    };
                    if orient(a, b, c2) == 0
                        && (c2 - b).x * (a - b).x + (c2 - b).y * (a - b).y > 0.0
                    {
                        return false;
                    }
                } else if c != SegmentContact::None {
                    return false;
                }
            }
        }
        true
    }

    /// Absolute area (shoelace).
    pub fn area(&self) -> f64 {
        self.edges().map(|(a, b)| cross(a, b)).sum::<f64>().abs() / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f64, y: f64) -> Point {
        Point::new(x, y)
    }

    #[test]
    fn headings_follow_screen_compass() {
        assert_eq!(p(0.0, -1.0).heading_deg(), Some(0.0));
        assert!((p(1.0, 0.0).heading_deg().unwrap() - 90.0).abs() < 1e-9);
        assert!((p(0.0, 1.0).heading_deg().unwrap() - 180.0).abs() < 1e-9);
        assert!((p(-1.0, 0.0).heading_deg().unwrap() - 270.0).abs() < 1e-9);
        assert_eq!(p(0.0, 0.0).heading_deg(), None);
        let v = Point::from_heading_deg(135.0);
        assert!((v.heading_deg().unwrap() - 135.0).abs() < 1e-9);
        assert!((angle_diff_deg(350.0, 10.0) - 20.0).abs() < 1e-9);
        assert!((angle_diff_deg(0.0, 180.0) - 180.0).abs() < 1e-9);
    }

    #[test]
    fn iou_of_boxes() {
        let a = BBox::new(0.0, 0.0, 0.2, 0.2);
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        let b = BBox::new(0.1, 0.0, 0.3, 0.2);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::new(0.5, 0.5, 0.6, 0.6)), 0.0);
        // Edge-touching boxes do not overlap.
        assert_eq!(a.iou(&BBox::new(0.2, 0.0, 0.4, 0.2)), 0.0);
        assert!(a.ground_point().dist(p(0.1, 0.2)) < 1e-6);
    }

    #[test]
    fn segments_cross_touch_or_miss() {
        let (a, b) = (p(0.0, 0.5), p(1.0, 0.5));
        assert_eq!(
            segment_contact(p(0.5, 0.4), p(0.5, 0.6), a, b),
            SegmentContact::Proper
        );
        // Ends exactly on the line: touching, not crossing.
        assert_eq!(
            segment_contact(p(0.5, 0.4), p(0.5, 0.5), a, b),
            SegmentContact::Touch
        );
        // Beyond the line's end: misses.
        assert_eq!(
            segment_contact(p(1.5, 0.4), p(1.5, 0.6), a, b),
            SegmentContact::None
        );
        // Collinear overlap is a touch.
        assert_eq!(
            segment_contact(p(0.2, 0.5), p(0.4, 0.5), a, b),
            SegmentContact::Touch
        );
    }

    #[test]
    fn sides_are_as_seen_on_screen() {
        // Line pointing right; "up" on the screen (smaller y) is on the left of the walker.
        let (a, b) = (p(0.0, 0.5), p(1.0, 0.5));
        assert_eq!(side_of(a, b, p(0.5, 0.4)), Some(Side::Left));
        assert_eq!(side_of(a, b, p(0.5, 0.6)), Some(Side::Right));
        assert_eq!(side_of(a, b, p(0.5, 0.5)), None);
    }

    #[test]
    fn polygon_contains_and_crossings() {
        let sq = Polygon::new(vec![p(0.4, 0.0), p(0.42, 0.0), p(0.42, 1.0), p(0.4, 1.0)]).unwrap();
        assert!(sq.contains(p(0.41, 0.5)));
        assert!(!sq.contains(p(0.3, 0.5)));
        assert!(!sq.contains(p(0.5, 0.5)));
        // A step jumping over the thin strip crosses two edges.
        assert_eq!(sq.proper_crossings(p(0.3, 0.5), p(0.5, 0.5)), 2);
        assert_eq!(sq.proper_crossings(p(0.3, 0.5), p(0.41, 0.5)), 1);
        assert!(sq.is_simple());
        assert!((sq.area() - 0.02).abs() < 1e-9);
        let bow = Polygon::new(vec![p(0.0, 0.0), p(1.0, 1.0), p(1.0, 0.0), p(0.0, 1.0)]).unwrap();
        assert!(!bow.is_simple());
        assert!(Polygon::new(vec![p(0.0, 0.0), p(1.0, 1.0)]).is_none());
    }
}
