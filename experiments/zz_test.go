package experiments
import ("testing";"context";"time";"github.com/capsel/capsel/train")
func TestCalib(t *testing.T){
	task := NewFactTask(1, 120, 240)
	for _, cov := range []float64{0, 0.8, 1} {
		cfg := train.DefaultConfig()
		cfg.Model = train.ModelConfig{D: 64, Layers: 2, Heads: 4, Context: Context}
		cfg.Steps, cfg.Batch, cfg.LR = 600, 32, 3e-3
		data := task.Pretraining(cov)
		data = append(data, train.Example{Response: letters+"=", Source:"alphabet", Line:1})
		tr, err := train.New(cfg, nil, data); if err != nil { t.Fatal(err) }
		st := time.Now()
		for !tr.Done() { if _, err := tr.Step(context.Background()); err != nil { t.Fatal(err) } }
		res, err := train.Evaluate(context.Background(), tr.Model(), tr.Tokenizer(), task.Eval(), train.EvalOptions{})
		if err != nil { t.Fatal(err) }
		t.Logf("coverage %.1f: mean p %.3f acc %.3f exact %.3f (%v)", cov, res.MeanP, res.TokenAccuracy, res.ExactMatch, time.Since(st))
	}
}
