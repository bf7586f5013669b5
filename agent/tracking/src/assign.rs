//! Optimal rectangular assignment (Hungarian / Kuhn–Munkres with potentials, O(n²m)).
//!
//! Used by the tracker to match tracks to detections on `1 - IoU` cost. Pairs that must not
//! match (IoU below the gate, different class) carry [`FORBIDDEN`]; since that cost dwarfs any
//! real one, the solver first maximises the number of allowed pairs, then minimises their cost,
//! and the forbidden pairs it was forced into are dropped from the result. All buffers are kept
//! in the [`Assigner`] and reused, so a warmed-up tracker does not allocate here.

/// Cost of a pair that may not be matched.
pub const FORBIDDEN: f64 = 1.0e6;

/// Reusable solver state.
#[derive(Debug, Default)]
pub struct Assigner {
    cost: Vec<f64>,
    u: Vec<f64>,
    v: Vec<f64>,
    p: Vec<usize>,
    way: Vec<usize>,
    minv: Vec<f64>,
    used: Vec<bool>,
    /// Result: for each row, `Some(col)` when matched.
    row_to_col: Vec<Option<usize>>,
}

impl Assigner {
    /// Prepares a `rows × cols` cost matrix filled with [`FORBIDDEN`] and returns it row-major.
    pub fn matrix(&mut self, rows: usize, cols: usize) -> &mut [f64] {
        self.cost.clear();
        self.cost.resize(rows * cols, FORBIDDEN);
        &mut self.cost
    }

    /// Solves the matrix last prepared by [`Assigner::matrix`]; returns the matched column of
    /// each row (forbidden pairs are reported as unmatched).
    pub fn solve(&mut self, rows: usize, cols: usize) -> &[Option<usize>] {
        self.row_to_col.clear();
        self.row_to_col.resize(rows, None);
        if rows == 0 || cols == 0 {
            return &self.row_to_col;
        }
        // The potentials algorithm needs n <= m; solve the transpose when there are more rows.
        let transposed = rows > cols;
        let (n, m) = if transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let at = |cost: &[f64], i: usize, j: usize| -> f64 {
            // i in 1..=n, j in 1..=m (1-based as in the classic formulation).
            if transposed {
                cost[(j - 1) * cols + (i - 1)]
            } else {
                cost[(i - 1) * cols + (j - 1)]
            }
        };
        self.u.clear();
        self.u.resize(n + 1, 0.0);
        self.v.clear();
        self.v.resize(m + 1, 0.0);
        self.p.clear();
        self.p.resize(m + 1, 0);
        self.way.clear();
        self.way.resize(m + 1, 0);
        for i in 1..=n {
            self.p[0] = i;
            let mut j0 = 0usize;
            self.minv.clear();
            self.minv.resize(m + 1, f64::INFINITY);
            self.used.clear();
            self.used.resize(m + 1, false);
            loop {
                self.used[j0] = true;
                let i0 = self.p[j0];
                let mut delta = f64::INFINITY;
                let mut j1 = 0usize;
                for j in 1..=m {
                    if !self.used[j] {
                        let cur = at(&self.cost, i0, j) - self.u[i0] - self.v[j];
                        if cur < self.minv[j] {
                            self.minv[j] = cur;
                            self.way[j] = j0;
                        }
                        if self.minv[j] < delta {
                            delta = self.minv[j];
                            j1 = j;
                        }
                    }
                }
                for j in 0..=m {
                    if self.used[j] {
                        self.u[self.p[j]] += delta;
                        self.v[j] -= delta;
                    } else {
                        self.minv[j] -= delta;
                    }
                }
                j0 = j1;
                if self.p[j0] == 0 {
                    break;
                }
            }
            loop {
                let j1 = self.way[j0];
                self.p[j0] = self.p[j1];
                j0 = j1;
                if j0 == 0 {
                    break;
                }
            }
        }
        for j in 1..=m {
            let i = self.p[j];
            if i == 0 || at(&self.cost, i, j) >= FORBIDDEN {
                continue;
            }
            let (r, c) = if transposed {
                (j - 1, i - 1)
            } else {
                (i - 1, j - 1)
            };
            self.row_to_col[r] = Some(c);
        }
        &self.row_to_col
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solve(rows: usize, cols: usize, c: &[f64]) -> Vec<Option<usize>> {
        let mut a = Assigner::default();
        a.matrix(rows, cols).copy_from_slice(c);
        a.solve(rows, cols).to_vec()
    }

    #[test]
    fn beats_greedy() {
        // Greedy takes (0,0)=0.1 and is left with (1,1)=0.9; optimal is 0.2 + 0.3.
        let r = solve(2, 2, &[0.1, 0.2, 0.3, 0.9]);
        assert_eq!(r, vec![Some(1), Some(0)]);
    }

    #[test]
    fn rectangular_both_ways_and_forbidden() {
        let r = solve(2, 3, &[0.9, 0.1, 0.5, 0.2, 0.3, FORBIDDEN]);
        assert_eq!(r, vec![Some(1), Some(0)]);
        let r = solve(3, 2, &[0.9, 0.1, 0.2, 0.3, 0.05, FORBIDDEN]);
        // 0.1 + 0.05 beats 0.2 + 0.1 and 0.3 + 0.05.
        assert_eq!(r, vec![Some(1), None, Some(0)]);
        let r = solve(2, 2, &[FORBIDDEN, FORBIDDEN, FORBIDDEN, 0.4]);
        assert_eq!(r, vec![None, Some(1)]);
        assert!(solve(0, 3, &[]).is_empty());
        assert_eq!(solve(2, 0, &[]), vec![None, None]);
    }

    #[test]
    fn maximises_allowed_pairs_first() {
        // Row 0 could take col 0 cheaply, but then row 1 (only col 0 allowed) would go unmatched.
        let r = solve(2, 2, &[0.0, 0.7, 0.1, FORBIDDEN]);
        assert_eq!(r, vec![Some(1), Some(0)]);
    }
}
