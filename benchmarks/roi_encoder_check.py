"""Quick check of ROI-wise read-out recipes, outside the harness (issue 12's design work).

Not the suite (``signal_kinds.py`` is): a small training loop (AdamW at a constant rate, batch
16, checkpoint by validation balanced accuracy, ties to the lower validation loss, early stopping)
over the harness' own subject-grouped folds (:func:`neurossm.data.splits.make_splits`), test fold
touched once, so that read-out designs can be compared in minutes. The encoder is a per-ROI
Mamba (``--enc roi``), a per-time-step one (``--enc time``) or their sum (``--enc both``);
``--ident`` replaces the per-ROI encoder by the identity (the pooled statistics of the pathway's
own signal: what a perfect-but-fixed feature extractor gives the read-out); ``--resid K`` adds
K zero-initialised corrections to each ROI's series (the design NeuroSSM's ``roi`` encoder
took); ``--skip`` concatenates the input's own statistics to the learned ones. Prints one line
per (kind, data seed): mean test accuracy over the 5 folds, selected epochs, wall time.

Example (the design NeuroSSM adopted, one pathway)::

    python benchmarks/roi_encoder_check.py --kinds events --seeds 0 1 --forms diff --pool moments \
        --mixer score --drop 0.3 --wd 0.5 --lr 3e-3 --epochs 60 --patience 15 --resid 2 --patch 4
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
sys.path.insert(0, str(Path(__file__).resolve().parent))
from neurossm.ssm.mamba import BiMamba
from neurossm.models.neurossm import pathway_signal
from neurossm.data.splits import make_splits
from signal_kinds import make_kind, KINDS

IDENT=False
RESID=0
SKIP=False
class Enc(nn.Module):
    def __init__(s, R, d, F_, patch, pool, mixer, layers, drop, stem_k):
        super().__init__()
        s.patch=patch; s.pool=pool; s.mixer=mixer
        s.stem = nn.Conv1d(1, F_, kernel_size=stem_k*patch if stem_k>1 else patch, stride=patch, padding=0)
        s.stem_k=stem_k
        s.blocks = nn.ModuleList(BiMamba(F_, d_state=4, d_conv=4, expand=2) for _ in range(layers))
        nf = (1 if IDENT else F_ + (1 if SKIP else 0))*(2 if pool in ("energy_max","moments") else 1)
        s.drop=nn.Dropout(drop)
        if RESID:
            s.res_out=nn.Linear(F_, RESID); nn.init.zeros_(s.res_out.weight); nn.init.zeros_(s.res_out.bias); nf=RESID*2
        if mixer=="linear": s.mix=nn.Linear(R*nf, d)
        elif mixer=="score": s.score=nn.Linear(nf,1); s.mix=nn.Linear(R,d)
        elif mixer=="score_k": s.score=nn.Linear(nf,4); s.mix=nn.Linear(R*4,d)
        elif mixer=="attention":
            s.score=nn.Linear(nf,1); s.prior=nn.Parameter(torch.zeros(R)); s.value=nn.Linear(nf,d); s.rv=nn.Parameter(torch.zeros(R,d))
    def forward(s, xp):
        B,R,T=xp.shape
        if IDENT:
            h = rearrange(xp, "b r t -> b t r 1")
        else: h = s._enc(xp)
        if RESID:
            xr = rearrange(xp, "b r t -> b t r 1")
            c = s.res_out(h)
            if s.patch > 1:
                c = c.repeat_interleave(s.patch, dim=1)
                c = F.pad(c, (0, 0, 0, 0, 0, xr.shape[1] - c.shape[1]))
            return s._readout(xr + c)
        if SKIP and not IDENT:
            return s._readout(h, rearrange(xp, "b r t -> b t r 1"))
        return s._readout(h)
    def _enc(s, xp):
        B,R,T=xp.shape
        x = rearrange(xp, "b r t -> (b r) 1 t")
        if s.stem_k>1: x = F.pad(x, ((s.stem_k-1)*s.patch//2, (s.stem_k-1)*s.patch - (s.stem_k-1)*s.patch//2))
        h = s.stem(x)
        h = rearrange(h, "(b r) d t -> b t r d", b=B)
        for blk in s.blocks: h = h + blk(h)
        return h
    def _readout(s, h, x=None):
        v = s._pool(h)
        if x is not None: v = torch.cat([s._pool(x), v], -1)
        return s._mix(v)
    def _pool(s, h):
        if s.pool=="abs_mean": v=h.abs().mean(1)
        elif s.pool=="energy": v=torch.log(h.pow(2).mean(1)+1e-4)
        elif s.pool=="energy_max": v=torch.cat([torch.log(h.pow(2).mean(1)+1e-4), torch.log(h.abs().amax(1)+1e-4)],-1)
        elif s.pool=="mean": v=h.mean(1)
        elif s.pool=="moments":
            e2=h.pow(2).mean(1)+1e-4; e4=h.pow(4).mean(1)+1e-8
            v=torch.cat([torch.log(e2), torch.log(e4)-2*torch.log(e2)],-1)
        return v
    def _mix(s, v):
        v=(v-v.mean(1,keepdim=True))*torch.rsqrt(v.var(1,keepdim=True,unbiased=False)+1e-5)
        v=s.drop(v)
        if s.mixer=="linear": return s.mix(v.flatten(1))
        if s.mixer=="score": return s.mix(s.score(v).squeeze(-1))
        if s.mixer=="score_k": return s.mix(s.score(v).flatten(1))
        w=torch.softmax(s.score(v).squeeze(-1)+s.prior,1); return torch.einsum("br,brd->bd",w,s.value(v)+s.rv)

class TimeEnc(nn.Module):
    def __init__(s, R, d, pool, drop, layers, te_d, **_):
        super().__init__(); s.embed=nn.Linear(R, te_d); s.norms=nn.ModuleList(nn.LayerNorm(te_d) for _ in range(layers))
        s.blocks=nn.ModuleList(BiMamba(te_d, d_state=16, d_conv=4, expand=2) for _ in range(layers)); s.pool=pool
        s.out=nn.Linear(te_d*(2 if pool=="moments" else 1), d); s.drop=nn.Dropout(drop); s.norm=nn.LayerNorm(te_d)
    def forward(s, xp):
        h=s.embed(rearrange(xp,"b r t -> b t r"))
        for n,b in zip(s.norms,s.blocks): h=h+s.drop(b(n(h)))
        if s.pool=="mean": v=s.norm(h).mean(1)
        elif s.pool=="energy": v=torch.log(h.pow(2).mean(1)+1e-4)
        else:
            e2=h.pow(2).mean(1)+1e-4; e4=h.pow(4).mean(1)+1e-8
            v=torch.cat([torch.log(e2), torch.log(e4)-2*torch.log(e2)],-1)
        return s.out(s.drop(v))

class Both(nn.Module):
    def __init__(s, R, **kw):
        super().__init__(); s.a=Enc(R, **{k:v for k,v in kw.items() if k!="te_d"}); s.b=TimeEnc(R, **kw)
    def forward(s, xp): return s.a(xp)+s.b(xp)

class Model(nn.Module):
    def __init__(s, R, C, specs, **kw):
        super().__init__(); s.specs=specs; d=kw["d"]
        enc=kw.pop("enc"); te_d=kw.pop("te_d")
        mk={"roi":lambda: Enc(R,**kw),"time":lambda: TimeEnc(R,te_d=te_d,**kw),"both":lambda: Both(R,te_d=te_d,**kw)}[enc]
        s.paths=nn.ModuleList(mk() for _ in specs); s.gate=nn.Linear(d,1)
        s.head=nn.Sequential(nn.LayerNorm(d), nn.Dropout(kw["drop"]), nn.Linear(d,C))
    def forward(s,x):
        v=torch.stack([p(pathway_signal(x,f,sc)) for p,(f,sc) in zip(s.paths,s.specs)],1)
        w=torch.softmax(s.gate(v),1); return s.head((w*v).sum(1))

def bacc(y,p):
    return np.mean([np.mean(p[y==c]==c) for c in np.unique(y)])

def run(args, kind, seed):
    ds=make_kind(kind, seed); by={s.scan_id:s for s in ds.scans}
    X=lambda ids: torch.tensor(np.stack([by[i].timeseries for i in ids]),dtype=torch.float32)
    Y=lambda ids: torch.tensor([by[i].label for i in ids])
    accs=[]; sel=[]
    specs=[(f,int(sc)) for f in args.forms for sc in args.scales]
    for sp in make_splits(ds, seed, 5, 0.2):
        torch.manual_seed(seed*100+sp.fold)
        Xtr,Ytr,Xva,Yva,Xte,Yte=X(sp.train),Y(sp.train),X(sp.val),Y(sp.val),X(sp.test),Y(sp.test)
        m=Model(ds.n_rois, ds.n_classes, specs, d=args.d, F_=args.F, patch=args.patch, pool=args.pool, mixer=args.mixer, layers=args.layers, drop=args.drop, stem_k=args.stem_k, enc=args.enc, te_d=args.te_d)
        opt=torch.optim.AdamW(m.parameters(), lr=args.lr, weight_decay=args.wd)
        best=(-1,1e9); bstate=None; bad=0; be=0
        for ep in range(args.epochs):
            m.train(); perm=torch.randperm(len(Ytr))
            for i in range(0,len(perm),16):
                b=perm[i:i+16]; loss=F.cross_entropy(m(Xtr[b]),Ytr[b]); opt.zero_grad(); loss.backward(); nn.utils.clip_grad_norm_(m.parameters(),1.0); opt.step()
            m.eval()
            with torch.no_grad():
                lv=m(Xva); va=bacc(Yva.numpy(), lv.argmax(1).numpy()); vl=F.cross_entropy(lv,Yva).item()
            if (va,-vl)>(best[0],-best[1]): best=(va,vl); bstate={k:v.clone() for k,v in m.state_dict().items()}; bad=0; be=ep
            else: bad+=1
            if args.v:
                with torch.no_grad(): ta=(m(Xte).argmax(1)==Yte).float().mean().item()
                print(f"  ep{ep} loss {loss.item():.3f} val {va:.3f} test {ta:.3f}", flush=True)
            if bad>=args.patience: break
        m.load_state_dict(bstate); m.eval()
        with torch.no_grad(): acc=(m(Xte).argmax(1)==Yte).float().mean().item()
        accs.append(acc); sel.append(be)
        if args.v: print(f" fold {sp.fold} acc {acc:.3f} sel {be}", flush=True)
    return np.mean(accs), sel

if __name__=="__main__":
    ap=argparse.ArgumentParser()
    ap.add_argument("--kinds",nargs="+",default=["events"]); ap.add_argument("--seeds",type=int,nargs="+",default=[0])
    ap.add_argument("--forms",nargs="+",default=["raw","diff"]); ap.add_argument("--scales",nargs="+",default=["1"])
    ap.add_argument("--d",type=int,default=32); ap.add_argument("--F",type=int,default=4); ap.add_argument("--patch",type=int,default=2)
    ap.add_argument("--pool",default="energy"); ap.add_argument("--mixer",default="score"); ap.add_argument("--layers",type=int,default=1)
    ap.add_argument("--drop",type=float,default=0.1); ap.add_argument("--lr",type=float,default=3e-3); ap.add_argument("--wd",type=float,default=1e-2)
    ap.add_argument("--epochs",type=int,default=40); ap.add_argument("--patience",type=int,default=8); ap.add_argument("--stem_k",type=int,default=1)
    ap.add_argument("--enc",default="roi"); ap.add_argument("--te_d",type=int,default=16); ap.add_argument("--v",action="store_true",help="print every epoch"); ap.add_argument("--threads",type=int,default=2)
    ap.add_argument("--no-filler",action="store_true",help="events kinds without the matched-energy filler (event_filler=false)"); ap.add_argument("--ident",action="store_true"); ap.add_argument("--resid",type=int,default=0); ap.add_argument("--skip",action="store_true")
    a=ap.parse_args(); torch.set_num_threads(a.threads); IDENT=a.ident;
    if a.no_filler:
        for k in KINDS.values():
            if k.get("signal_form")=="events": k["event_filler"]=False
    RESID=a.resid; SKIP=a.skip
    for k in a.kinds:
        for s in a.seeds:
            t=time.time(); acc,sel=run(a,k,s); print(f"{k} seed {s} acc {acc:.3f} sel {sel} {time.time()-t:.0f}s | {vars(a)}", flush=True)
