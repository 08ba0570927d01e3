"""One trial trained on its own, the way a user would: the independent reference of the batched evaluator."""
import torch

from discover import ProgramOptimizer
from discover.evaluate.trials import task_instance


def train_alone(task_name, program, lr, seed, steps):
    """Final validation loss of `program` at `lr` from `seed`: ProgramOptimizer, with the task's warmup +
    cosine schedule driven by torch's own LambdaLR."""
    task = task_instance(task_name)
    params = task.init_params([seed])
    opt = ProgramOptimizer(params, program, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: task.lr_factor(epoch + 1, steps))
    for step in range(1, steps + 1):
        task.train_loss(params, step).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    with torch.no_grad():
        return float(task.val_loss(params)[0])
