//! Update rules: how the server turns a (possibly stale) gradient into a new
//! version. One trait, one required method.

/// What a rule may know about the gradient it applies.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// Index of this update (the server's version before it).
    pub step: u64,
    /// Versions applied between the fetch and this push.
    pub staleness: u64,
    /// The parameters the gradient was computed at.
    pub stale_params: &'a [f64],
}

/// An update rule: writes the next parameters into `params` and keeps its
/// state in `previous` (the momentum state v_{k−1} for heavy ball).
pub trait UpdateRule: Send + Sync {
    /// Applies `gradient` (a descent direction) in place. Must not allocate.
    fn apply(
        &self,
        params: &mut [f64],
        previous: &mut [f64],
        gradient: &[f64],
        ctx: &StepContext<'_>,
    );
}

/// Polyak's heavy ball, eq. (2.1) of 001 written for minimisation:
/// v_{k+1} = v_k + μ(v_k − v_{k−1}) − η·g. With μ = 0 it is plain SGD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeavyBall {
    /// Momentum μ in [0, 1).
    pub momentum: f64,
    /// Step size η.
    pub step_size: f64,
}

impl UpdateRule for HeavyBall {
    #[inline]
    fn apply(
        &self,
        params: &mut [f64],
        previous: &mut [f64],
        gradient: &[f64],
        _ctx: &StepContext<'_>,
    ) {
        let (mu, eta) = (self.momentum, self.step_size);
        for ((v, p), g) in params.iter_mut().zip(previous.iter_mut()).zip(gradient) {
            let now = *v;
            *v = now + mu * (now - *p) - eta * g;
            *p = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_ball_matches_the_formula() {
        let rule = HeavyBall {
            momentum: 0.5,
            step_size: 0.1,
        };
        let mut v = [1.0, 2.0];
        let mut prev = [0.0, 2.0];
        let ctx = StepContext {
            step: 0,
            staleness: 0,
            stale_params: &[1.0, 2.0],
        };
        rule.apply(&mut v, &mut prev, &[1.0, -1.0], &ctx);
        assert_eq!(v, [1.0 + 0.5 * 1.0 - 0.1, 2.0 + 0.1]);
        assert_eq!(prev, [1.0, 2.0]);
    }
}
