"""Runs the code that 'selector export' writes for TRL and ms-swift the way
their trainers call it, with no real model and no transformers, TRL or
ms-swift installed, and prints what the code computed as JSON for
selector/export_harness_test.go to check against capsel's own Go code.

The stand-ins below follow the trainers' code, read at these commits
(capsel's transcription, not a copy):

  transformers  src/transformers/trainer.py 000945a: Trainer._inner_training_loop
                (get_batch_samples before on_step_begin; one training_step, so one
                backward(), per micro-batch; global_step += 1, then on_step_end, then
                _maybe_log_save_evaluate; on resume TrainerState.load_from_json, then
                _load_callback_state, then on_train_begin), get_batch_samples (counts
                labels != -100 over the step's micro-batches; the 5.x
                _get_num_items_in_batch counts labels[..., 1:], the same here because
                every sequence starts with a prompt label -100), training_step (no
                division by the accumulation steps when compute_loss_func is set),
                compute_loss (labels popped before the forward when compute_loss_func
                is set; loss *= num_processes under average_tokens_across_devices),
                _save_checkpoint (ExportableState.state() into stateful_callbacks) and
                _load_callback_state (type(cb)(**args), then setattr per attribute, only
                with restore_callback_states_from_checkpoint)
  TRL           trl/trainer/sft_trainer.py f2cd577: SFTTrainer.compute_loss keeps the
                labels aside and calls Trainer.compute_loss
  ms-swift      swift/trainers/seq2seq_trainer.py, swift/trainers/mixin.py 3602360:
                loss_map[loss_type](args, trainer), callbacks_map[name](args, trainer),
                compute_loss pops the labels and calls compute_loss_func(outputs,
                labels, num_items_in_batch=, loss_scale=, trainer=), then loss *=
                num_processes under average_tokens_across_devices and
                model_accepts_loss_kwargs; swift/loss/base.py BaseLoss

Cases with "world" above 1 run on that many processes joined by
torch.distributed over gloo, each with its own shard of the data, as DDP
would: num_items_in_batch is all-reduced (accelerator.gather(...).sum()), the
loss multiplied by the number of processes, and the parameters' gradients
averaged over ranks before the optimizer step.

The model is a bigram table W[V, V] plus a position bias, so its logits are
an ordinary function of trainable weights, trained by SGD; the labels come from
a fixed Markov chain, so that the model grows confident and auto-theory's
choice can move.

usage: trainer.py SPEC_JSON OUT_JSON
"""
import importlib.util
import json
import os
import sys
import types

import torch

# ---- stand-ins for transformers, TRL and ms-swift ----------------------------

transformers = types.ModuleType("transformers")
trainer_callback = types.ModuleType("transformers.trainer_callback")


class TrainerCallback:
    def on_train_begin(self, args, state, control, **kw):
        pass

    def on_step_begin(self, args, state, control, **kw):
        pass

    def on_step_end(self, args, state, control, **kw):
        pass


class ExportableState:
    def state(self):
        raise NotImplementedError


class TrainerControl(ExportableState):
    def __init__(self, **kw):
        self.should_save = False

    def state(self):
        return {"args": {}, "attributes": {}}


class TrainerState:
    def __init__(self, stateful_callbacks=None, global_step=0):
        self.global_step = global_step
        if isinstance(stateful_callbacks, dict):
            self.stateful_callbacks = stateful_callbacks
        else:
            self.stateful_callbacks = {}
            for cb in stateful_callbacks or []:
                name = type(cb).__name__
                if name in self.stateful_callbacks:
                    if not isinstance(self.stateful_callbacks[name], list):
                        self.stateful_callbacks[name] = [self.stateful_callbacks[name]]
                    self.stateful_callbacks[name].append(cb.state())
                else:
                    self.stateful_callbacks[name] = cb.state()

    def save_to_json(self, path):
        with open(path, "w") as f:
            json.dump({"global_step": self.global_step, "stateful_callbacks": self.stateful_callbacks}, f)

    @classmethod
    def load_from_json(cls, path):
        with open(path) as f:
            d = json.load(f)
        return cls(stateful_callbacks=d["stateful_callbacks"], global_step=d["global_step"])


class CallbackHandler:
    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def add_callback(self, cb):
        self.callbacks.append(cb)

    def remove_callback(self, cls):
        for cb in self.callbacks:
            if isinstance(cb, cls):
                self.callbacks.remove(cb)
                return

    def event(self, name, args, state, control):
        for cb in self.callbacks:
            getattr(cb, name)(args, state, control)
        return control


transformers.TrainerCallback = TrainerCallback
trainer_callback.ExportableState = ExportableState
transformers.trainer_callback = trainer_callback
sys.modules["transformers"] = transformers
sys.modules["transformers.trainer_callback"] = trainer_callback


def _world():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


class Args:
    def __init__(self, accum, restore=True, average_tokens_across_devices=True):
        self.gradient_accumulation_steps = accum
        self.restore_callback_states_from_checkpoint = restore
        self.average_tokens_across_devices = average_tokens_across_devices
        self.device = torch.device("cpu")


class Outputs:
    def __init__(self, logits):
        self.logits = logits


class Bigram(torch.nn.Module):
    def __init__(self, V, T, init=0.0):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.W = torch.nn.Parameter(init * torch.randn(V, V, generator=g))
        self.P = torch.nn.Parameter(torch.zeros(T, V))
        self.trained = []  # (logits, labels) of each training forward, for the report

    def forward(self, input_ids, attention_mask=None, num_items_in_batch=None, **kw):
        z = self.W[input_ids] + self.P[: input_ids.size(1)]
        if z.requires_grad:
            z.retain_grad()
        return Outputs(z)


class Trainer:
    """transformers.Trainer's training loop (see the top of this file)."""

    def __init__(self, model=None, args=None, train_dataset=None, compute_loss_func=None, callbacks=None, **kw):
        self.model = self.model_wrapped = model
        self.args = args
        self.data = train_dataset
        self.compute_loss_func = compute_loss_func
        self.callback_handler = CallbackHandler(callbacks or [])
        self.control = TrainerControl()
        self.model_accepts_loss_kwargs = True  # a causal LM whose forward takes **kwargs
        self.record = []

    def _prepare_inputs(self, inputs):
        return inputs

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples = []
        for _ in range(num_batches):
            try:
                batch_samples.append(next(epoch_iterator))
            except StopIteration:
                break
        num_items_in_batch = None
        if batch_samples and "labels" in batch_samples[0] and (self.model_accepts_loss_kwargs or self.compute_loss_func is not None):
            num_items_in_batch = sum([(b["labels"].ne(-100)).sum() for b in batch_samples])
        if num_items_in_batch is not None and self.args.average_tokens_across_devices and _world() > 1:
            num_items_in_batch = num_items_in_batch.clone()
            torch.distributed.all_reduce(num_items_in_batch)  # accelerator.gather(...).sum()
        return batch_samples, num_items_in_batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels") if self.compute_loss_func is not None and "labels" in inputs else None
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            inputs = {**inputs, "num_items_in_batch": num_items_in_batch}
        outputs = model(**inputs)
        if labels is None:
            raise RuntimeError("harness: no compute_loss_func")
        loss = self.compute_loss_func(outputs, labels, num_items_in_batch=num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * _world()  # accelerator.num_processes
        model.trained.append((outputs.logits, labels))
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        model.train()
        loss = self.compute_loss(model, self._prepare_inputs(inputs), num_items_in_batch=num_items_in_batch)
        if self.compute_loss_func is None:
            loss = loss / self.current_gradient_accumulation_steps
        loss.backward()
        return loss.detach()

    def _load_callback_state(self):
        if not self.args.restore_callback_states_from_checkpoint:
            return
        originals = self.callback_handler.callbacks + [self.control]
        new_callbacks = []
        for name, data in self.state.stateful_callbacks.items():
            if not isinstance(data, list):
                data = [data]
            dups = [cb for cb in originals if type(cb).__name__ == name]
            for cb, d in zip(dups, data):
                new = type(cb)(**d.get("args", {}))
                for k, v in d.get("attributes", {}).items():
                    setattr(new, k, v)
                if isinstance(cb, TrainerControl):
                    self.control = new
                else:
                    new_callbacks.append(new)
                self.callback_handler.remove_callback(type(new))
        for cb in new_callbacks:
            self.callback_handler.add_callback(cb)

    def train(self, steps, resume_from=None, save_at=None, lr=0.5):
        args, model = self.args, self.model
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        cbs = self.callback_handler.callbacks + [self.control]
        self.state = TrainerState(stateful_callbacks=[cb for cb in cbs if isinstance(cb, ExportableState)])
        start = 0
        if resume_from is not None:
            model.load_state_dict(torch.load(os.path.join(resume_from, "model.pt")))
            self.state = TrainerState.load_from_json(os.path.join(resume_from, "trainer_state.json"))
            self._load_callback_state()
            start = self.state.global_step
        self.callback_handler.event("on_train_begin", args, self.state, self.control)
        it = iter(self.data[start * args.gradient_accumulation_steps :])  # skip_first_batches
        for _ in range(start, steps):
            batches, num_items = self.get_batch_samples(it, args.gradient_accumulation_steps, args.device)
            self.current_gradient_accumulation_steps = len(batches)
            model.trained = []
            mbs = []
            for i, inputs in enumerate(batches):
                if i == 0:
                    self.callback_handler.event("on_step_begin", args, self.state, self.control)
                loss = self.training_step(model, dict(inputs), num_items)
                z, labels = model.trained[-1]
                mb = {"logits": z.detach().tolist(), "labels": labels.tolist(), "loss": loss.item(), "grad": z.grad.tolist()}
                if "ref" in inputs:
                    mb["ref"] = inputs["ref"].tolist()
                mbs.append(mb)
            if _world() > 1:  # DDP averages the parameters' gradients over ranks
                for q in model.parameters():
                    torch.distributed.all_reduce(q.grad)
                    q.grad /= _world()
            opt.step()
            opt.zero_grad()
            self.state.global_step += 1
            self.callback_handler.event("on_step_end", args, self.state, self.control)
            self.record.append({"step": self.state.global_step - 1, "num_items": int(num_items), "mbs": mbs})
            if save_at is not None and self.state.global_step == save_at[0]:
                self._save_checkpoint(save_at[1])
        return self.record

    def _save_checkpoint(self, out):
        os.makedirs(out, exist_ok=True)
        torch.save(self.model.state_dict(), os.path.join(out, "model.pt"))
        for cb in [cb for cb in self.callback_handler.callbacks + [self.control] if isinstance(cb, ExportableState)]:
            name = type(cb).__name__
            if isinstance(self.state.stateful_callbacks[name], list):
                self.state.stateful_callbacks[name].append(cb.state())
            else:
                self.state.stateful_callbacks[name] = cb.state()
        self.state.save_to_json(os.path.join(out, "trainer_state.json"))


class SFTTrainer(Trainer):
    """TRL's SFTTrainer.compute_loss: the labels kept aside, then Trainer.compute_loss."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


trl = types.ModuleType("trl")
trl.SFTTrainer = SFTTrainer
sys.modules["trl"] = trl

swift = types.ModuleType("swift")
swift_loss = types.ModuleType("swift.loss")
swift_callbacks = types.ModuleType("swift.callbacks")


class BaseLoss:
    def __init__(self, args, trainer):
        self.args = args
        self.trainer = trainer
        self.is_megatron = "BaseMegatronTrainer" in [c.__name__ for c in type(trainer).__mro__]


swift_loss.BaseLoss = BaseLoss
swift_loss.loss_map = {}
swift_callbacks.callbacks_map = {}
sys.modules["swift"] = swift
sys.modules["swift.loss"] = swift_loss
sys.modules["swift.callbacks"] = swift_callbacks


class SwiftTrainer(Trainer):
    """swift sft's Seq2SeqTrainer: the loss and the callbacks from the plugin's mappings."""

    def __init__(self, loss_type, callback_names, *a, **kw):
        kw["callbacks"] = []
        super().__init__(*a, **kw)
        self.template = types.SimpleNamespace(sequence_parallel_size=1)
        self.compute_loss_func = swift_loss.loss_map[loss_type](self.args, self)
        for name in callback_names:
            self.callback_handler.add_callback(swift_callbacks.callbacks_map[name](self.args, self))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss_scale = inputs.pop("loss_scale", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = self.compute_loss_func(outputs, labels, num_items_in_batch=num_items_in_batch, loss_scale=loss_scale, trainer=self)
        if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            loss = loss * _world()
        model.trained.append((outputs.logits, labels))
        return (loss, outputs) if return_outputs else loss


# ---- data ---------------------------------------------------------------------

def make_data(n_micro, B, T, V, seed, with_ref):
    """Micro-batches of B sequences from a Markov chain; two prompt tokens (-100) and, in one sequence of each, padding."""
    g = torch.Generator().manual_seed(seed)
    trans = torch.full((V, V), 0.3 / (V - 1))
    fav = torch.randperm(V, generator=g)
    for a in range(V):
        trans[a, fav[a]] = 0.7
    out = []
    for m in range(n_micro):
        ids = torch.zeros(B, T, dtype=torch.long)
        ids[:, 0] = torch.randint(V, (B,), generator=g)
        for t in range(1, T):
            ids[:, t] = torch.multinomial(trans[ids[:, t - 1]], 1, generator=g).squeeze(-1)
        labels = ids.clone()
        labels[:, :2] = -100
        labels[m % B, T - 1 - m % 3 :] = -100
        mb = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
        if with_ref:
            mb["ref"] = torch.randn(B, T, V, generator=g) * 1.5
        out.append(mb)
    return out


class RefModel(torch.nn.Module):
    """A frozen reference whose logits ride along in the inputs (the stand-in for the starting model)."""

    def forward(self, input_ids, ref=None, **kw):
        return Outputs(ref)


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def strip_ref(model):
    """The policy ignores the reference's logits in its inputs."""
    fwd = model.forward
    model.forward = lambda ref=None, **kw: fwd(**kw)
    return model


def run(case, workdir):
    torch.manual_seed(0)
    B, T, V = case["B"], case["T"], case["V"]
    accum, steps = case["accum"], case["steps"]
    with_ref = case.get("ref", False)
    world = _world()
    data = make_data(steps * accum * world, B, T, V, case["seed"], with_ref)
    data = data[torch.distributed.get_rank() :: world] if world > 1 else data  # each rank's shard
    model = strip_ref(Bigram(V, T, case.get("init", 0.0)))
    args = Args(accum, restore=case.get("restore", True))
    resume = case.get("resume")  # [save after this many steps, then resume in a fresh process]
    mod = load(case["file"], "capsel_export_" + str(os.getpid()))
    kind = case["trainer"]
    if with_ref and kind == "swift":
        mod.REF_MODEL = RefModel()  # what REF_MODEL = "<base model>" loads, here a stand-in
    if kind == "swift":
        trainer = SwiftTrainer(case["loss_type"], case.get("callbacks", []), model=model, args=args, train_dataset=data)
    else:
        loss = mod.capsel_loss
        cls = mod.CapselSFTTrainer if kind == "capsel" else SFTTrainer
        kw = {"ref_model": RefModel()} if kind == "capsel" and with_ref else {}
        trainer = cls(model=model, args=args, train_dataset=data, compute_loss_func=loss, callbacks=[loss], **kw)
    ckpt = os.path.join(workdir, "ckpt")
    if resume is not None and case.get("phase") == "second":
        record = trainer.train(steps, resume_from=ckpt, lr=case["lr"])
    elif resume is not None:
        record = trainer.train(resume, save_at=(resume, ckpt), lr=case["lr"])
    else:
        record = trainer.train(steps, lr=case["lr"])
    out = {"steps": record}
    if hasattr(mod, "_STATE"):
        out["history"] = mod._STATE["capsel"]["history"]
    return out


def guarded(case):
    try:
        return run(case, case["workdir"])
    except Exception as e:  # reported to the Go test, which decides whether it was expected
        return {"error": "%s: %s" % (type(e).__name__, e)}


def rank_main(rank, world, cases, port, out):
    """One rank of DDP runs over gloo: each case the same run on its own shard of the data."""
    torch.distributed.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=world)
    try:
        res = [guarded(case) for case in cases]
    finally:
        torch.distributed.destroy_process_group()
    json.dump(res, open("%s.rank%d" % (out, rank), "w"))


def main():
    cases = json.load(open(sys.argv[1]))
    results = [guarded(c) if c.get("world", 1) == 1 else None for c in cases]
    ddp = [i for i, c in enumerate(cases) if c.get("world", 1) > 1]
    if ddp:
        world = cases[ddp[0]]["world"]
        if any(cases[i]["world"] != world for i in ddp):
            raise SystemExit("harness: the DDP cases of one call must share their world size")
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        out = sys.argv[2] + ".ddp"
        torch.multiprocessing.spawn(rank_main, args=(world, [cases[i] for i in ddp], port, out), nprocs=world)
        per_rank = [json.load(open("%s.rank%d" % (out, r))) for r in range(world)]
        for j, i in enumerate(ddp):
            results[i] = {"ranks": [per_rank[r][j] for r in range(world)]}
    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
