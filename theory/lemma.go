package theory

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/optimize"
)

// LemmaE7Max is the closed-form maximum over the probability simplex of
//
//	F(q) = q_i·q_j·(‖q‖² − q_i − q_j),  i ≠ j,
//
// namely (11√33 − 59)/768 ≈ 0.0054560 (paper, Lemma E.7(2)).
var LemmaE7Max = (11*math.Sqrt(33) - 59) / 768

// LemmaE7Argmax is where the maximum is attained: q_i = q_j = (9 − √33)/24 ≈
// 0.13564, with the remaining mass 1 − 2q_i on one other coordinate.
var LemmaE7Argmax = (9 - math.Sqrt(33)) / 24

// LemmaResult is the outcome of the numerical check of Lemma E.7.
type LemmaResult struct {
	Max        float64   `json:"max"`         // the largest F found
	Argmax     []float64 `json:"argmax"`      // q at that point; q[0] = q_i, q[1] = q_j
	ClosedForm float64   `json:"closed_form"` // LemmaE7Max
	AbsError   float64   `json:"abs_error"`   // |Max − ClosedForm|
	ArgmaxForm float64   `json:"argmax_closed_form"`
	ArgError   float64   `json:"argmax_abs_error"` // max(|q_i − form|, |q_j − form|)
	Dims       []int     `json:"dims"`             // simplex dimensions searched
	Starts     int       `json:"starts"`           // random starts per dimension
}

// CheckLemmaE7 maximises F over the simplex numerically and compares the
// result with the closed form. The simplex is parametrised by free logits,
// q = softmax(z), and −F is minimised with BFGS (gonum/optimize) and an
// analytic gradient from several seeded random starts in dimensions 3, 4 and
// 5. Dimension 3 holds the maximiser in its interior; the larger ones check
// that spreading the remaining mass does not beat it.
func CheckLemmaE7(seed uint64) (LemmaResult, error) {
	res := LemmaResult{ClosedForm: LemmaE7Max, ArgmaxForm: LemmaE7Argmax, Dims: []int{3, 4, 5}, Starts: 20, Max: math.Inf(-1)}
	rng := rand.New(rand.NewPCG(seed, 0xE7))
	for _, n := range res.Dims {
		prob := optimize.Problem{
			Func: func(z []float64) float64 { return -lemmaF(softmax(z)) },
			Grad: func(grad, z []float64) { lemmaGrad(grad, z) },
		}
		for range res.Starts {
			z0 := make([]float64, n)
			for k := range z0 {
				z0[k] = 2 * rng.NormFloat64()
			}
			r, err := optimize.Minimize(prob, z0, &optimize.Settings{GradientThreshold: 1e-13}, &optimize.BFGS{})
			if err != nil && r == nil {
				return res, fmt.Errorf("theory: lemma E.7 search: %w", err)
			}
			if v := -r.F; v > res.Max {
				res.Max = v
				res.Argmax = softmax(r.X)
			}
		}
	}
	res.AbsError = math.Abs(res.Max - res.ClosedForm)
	res.ArgError = math.Max(math.Abs(res.Argmax[0]-LemmaE7Argmax), math.Abs(res.Argmax[1]-LemmaE7Argmax))
	return res, nil
}

// lemmaF is F(q) with i = 0 and j = 1.
func lemmaF(q []float64) float64 {
	return q[0] * q[1] * (sqNorm(q) - q[0] - q[1])
}

// lemmaGrad writes ∇_z(−F(softmax(z))) into grad. With S = ‖q‖², a = q_0 and
// b = q_1: ∂F/∂q_0 = b(S − a − b) + ab(2a − 1), ∂F/∂q_1 = a(S − a − b) +
// ab(2b − 1), ∂F/∂q_k = 2ab·q_k otherwise; the softmax Jacobian
// diag(q) − qqᵀ maps g to q ⊙ g − q·(qᵀg).
func lemmaGrad(grad, z []float64) {
	q := softmax(z)
	a, b, s := q[0], q[1], sqNorm(q)
	g := make([]float64, len(q))
	g[0] = b*(s-a-b) + a*b*(2*a-1)
	g[1] = a*(s-a-b) + a*b*(2*b-1)
	for k := 2; k < len(q); k++ {
		g[k] = 2 * a * b * q[k]
	}
	var qg float64
	for k := range q {
		qg += q[k] * g[k]
	}
	for k := range q {
		grad[k] = -(q[k]*g[k] - q[k]*qg)
	}
}

func softmax(z []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, v)
	}
	out := make([]float64, len(z))
	var s float64
	for i, v := range z {
		out[i] = math.Exp(v - m)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}
