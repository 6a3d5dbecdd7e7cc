"""Guided backpropagation of a torchvision DenseNet, ResNet or VGG as a second, forward-only ONNX graph.

ONNX Runtime has no backward pass, so the package carries the explicit adjoint of the network,
written with forward operators only and built from the same weights (same initializer names):

    conv                 -> ConvTranspose with the same kernel (conv0, stride 2, needs output_padding)
    eval BatchNorm       -> a per-channel scale gamma / sqrt(var + eps)
    ReLU (guided)        -> relu(g) * (x > 0)          (guiding off: g * (x > 0), the true adjoint)
    concatenation        -> slices of the gradient, summed into the inputs' gradients
    2x2 average pool     -> nearest upsample x 1/4
    first max-pool       -> its indices + ScatterElements(reduction=add)   (opset 16; MaxUnpool does not sum)
    residual add (ResNet) -> the gradient goes to both branches, the shortcut's (identity or 1x1 conv +
                           BN downsample) and the bottleneck's (1x1, 3x3 strided, 1x1 convs), and is summed
    VGG's 2x2 max-pools  -> as the first max-pool (indices + ScatterElements)
    head                 -> seed: the head's own adjoint for class c, computed in the graph:
                            linear over GAP: W[c] / HW at every feature position;
                            mlp: W_last[c], back through each hidden layer (ReLU rule as above, then W^T),
                            then / HW at every position (GAP) or reshaped onto the map (flatten, VGG)

The guided rule is applied at EVERY ReLU, DenseNet's final functional ReLU (F.relu before the global
pool) included. captum's GuidedBackprop and pytorch-grad-cam's GuidedBackpropReLUModel only replace
nn.ReLU modules, so that functional ReLU stays a plain ReLU there; guided_reference.py measures the
difference.

Graph signature (N = 1 image, K class selectors, dynamic):
    inputs   <input name> float [1, C, S, S]   the preprocessed image, as the model sees it
             classes      int64 [K]            the class indices to explain
    outputs  gradient     float [K, C, S, S]   d logit_c / d input under the guided rule
             logits       float [1, labels]    the forward logits (a load-time check that the graph
                                               carries the model's weights)
"""
import numpy as np
import onnx
import torch
import torchvision
from onnx import TensorProto, helper, numpy_helper

import cxr_models

OPSET = 16


class _Graph:
    def __init__(self, state):
        self.nodes = []
        self.inits = {}
        self.state = state
        self.count = 0

    def op(self, op, inputs, outputs=1, **attrs):
        names = []
        for _ in range(outputs):
            self.count += 1
            names.append("%s_%d" % (op.lower(), self.count))
        self.nodes.append(helper.make_node(op, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def const(self, arr, dtype=np.float32):
        self.count += 1
        name = "const_%d" % self.count
        self.inits[name] = numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)
        return name

    def weight(self, name):
        """A state-dict tensor as an initializer under its state-dict name (shared with model.onnx)."""
        if name not in self.inits:
            t = self.state[name].detach().cpu().numpy().astype(np.float32)
            self.inits[name] = numpy_helper.from_array(t, name)
        return name


class _Builder:
    def __init__(self, model, size, guided):
        self.g = _Graph(model.state_dict())
        self.model = model
        self.size = size
        self.guided = guided

    # every forward helper returns (output, spatial size, backward closure gradient -> gradient)

    def conv(self, x, hw, prefix, mod):
        assert mod.groups == 1 and tuple(mod.dilation) == (1, 1)
        assert mod.kernel_size[0] == mod.kernel_size[1] and mod.stride[0] == mod.stride[1] and mod.padding[0] == mod.padding[1]
        g = self.g
        k, s, p = mod.kernel_size[0], mod.stride[0], mod.padding[0]
        w = g.weight(prefix + ".weight")
        # a bias (VGG) shifts the forward only; the adjoint of x -> conv(x) + b is the transposed conv alone
        ins = [x, w] + ([g.weight(prefix + ".bias")] if mod.bias is not None else [])
        y = g.op("Conv", ins, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
        out = (hw + 2 * p - k) // s + 1
        # ConvTranspose(out) is (out-1)*s - 2p + k; conv0 (7x7/2, 224 -> 112) gives 223, one short of 224
        extra = hw - ((out - 1) * s - 2 * p + k)

        def back(gr):
            attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
            if extra:
                attrs["output_padding"] = [extra, extra]
            return g.op("ConvTranspose", [gr, w], **attrs)
        return y, out, back

    def bn(self, x, hw, prefix, mod):
        g = self.g
        names = [g.weight(prefix + n) for n in (".weight", ".bias", ".running_mean", ".running_var")]
        y = g.op("BatchNormalization", [x] + names, epsilon=float(mod.eps))
        scale = g.op("Div", [names[0], g.op("Sqrt", [g.op("Add", [names[3], g.const(mod.eps)])])])
        scale = g.op("Reshape", [scale, g.const([-1, 1, 1], np.int64)])
        return y, hw, lambda gr: g.op("Mul", [gr, scale])

    def relu(self, x, hw):
        g = self.g
        y = g.op("Relu", [x])
        mask = g.op("Cast", [g.op("Greater", [x, g.const(0.0)])], to=TensorProto.FLOAT)

        def back(gr):
            return g.op("Mul", [g.op("Relu", [gr]) if self.guided else gr, mask])
        return y, hw, back

    def maxpool(self, x, hw, mod, channels):
        g = self.g
        k, s, p = mod.kernel_size, mod.stride, mod.padding
        assert not mod.ceil_mode and mod.dilation == 1 and isinstance(k, int) and isinstance(s, int) and isinstance(p, int)
        y, idx = g.op("MaxPool", [x], outputs=2, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
        out = (hw + 2 * p - k) // s + 1

        def back(gr):
            # MaxPool's indices are flat over N*C*H*W of its input; N = 1, so they index one image's C*H*W
            flat = g.op("Reshape", [gr, g.const([0, -1], np.int64)])
            ind = g.op("Expand", [g.op("Reshape", [idx, g.const([1, -1], np.int64)]), g.op("Shape", [flat])])
            k_dim = g.op("Slice", [g.op("Shape", [gr]), g.const([0], np.int64), g.const([1], np.int64)])
            zshape = g.op("Concat", [k_dim, g.const([channels * hw * hw], np.int64)], axis=0)
            zeros = g.op("ConstantOfShape", [zshape], value=numpy_helper.from_array(np.zeros(1, np.float32)))
            # overlapping windows (3x3 / 2) can pick the same input twice: the adjoint sums, hence reduction add
            acc = g.op("ScatterElements", [zeros, ind, flat], axis=1, reduction="add")
            return g.op("Reshape", [acc, g.const([0, channels, hw, hw], np.int64)])
        return y, out, back

    def avgpool(self, x, hw, mod):
        g = self.g
        assert mod.kernel_size == 2 and mod.stride == 2 and mod.padding == 0 and hw % 2 == 0
        y = g.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])

        def back(gr):
            up = g.op("Resize", [gr, "", g.const([1, 1, 2, 2])], mode="nearest",
                      coordinate_transformation_mode="asymmetric", nearest_mode="floor")
            return g.op("Mul", [up, g.const(0.25)])
        return y, hw // 2, back

    def chain(self, x, hw, steps):
        """Runs (kind, prefix, module) steps forward; returns the output and the chained backward."""
        backs = []
        for kind, prefix, mod in steps:
            if kind == "conv":
                x, hw, b = self.conv(x, hw, prefix, mod)
            elif kind == "bn":
                x, hw, b = self.bn(x, hw, prefix, mod)
            elif kind == "relu":
                x, hw, b = self.relu(x, hw)
            elif kind == "avgpool":
                x, hw, b = self.avgpool(x, hw, mod)
            else:
                raise ValueError(kind)
            backs.append(b)

        def back(gr):
            for b in reversed(backs):
                gr = b(gr)
            return gr
        return x, hw, back

    def dense_block(self, x, hw, prefix, block, channels):
        g = self.g
        feats = [x]
        layer_backs = []  # (input channels, new channels, backward)
        c = channels
        for name, layer in block.named_children():
            inp = feats[0] if len(feats) == 1 else g.op("Concat", feats, axis=1)
            p = prefix + "." + name
            y, _, back = self.chain(inp, hw, [("bn", p + ".norm1", layer.norm1), ("relu", None, None),
                                              ("conv", p + ".conv1", layer.conv1), ("bn", p + ".norm2", layer.norm2),
                                              ("relu", None, None), ("conv", p + ".conv2", layer.conv2)])
            grow = layer.conv2.out_channels
            layer_backs.append((c, grow, back))
            feats.append(y)
            c += grow
        out = g.op("Concat", feats, axis=1)

        def back(gr):
            # the block output is concat(x0, f1..fL); layer l read concat(x0, f1..f(l-1)). Walking back,
            # the last `grow` channels of the running gradient are f_l's complete gradient; its adjoint
            # through layer l adds onto the remaining (earlier) channels.
            for cin, grow, b in reversed(layer_backs):
                head = g.op("Slice", [gr, g.const([0], np.int64), g.const([cin], np.int64), g.const([1], np.int64)])
                tail = g.op("Slice", [gr, g.const([cin], np.int64), g.const([cin + grow], np.int64),
                                      g.const([1], np.int64)])
                gr = g.op("Add", [head, b(tail)])
            return gr
        return out, hw, c, back

    def bottleneck(self, x, hw, prefix, blk):
        """torchvision Bottleneck: relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))) + shortcut(x))."""
        g = self.g
        y, out_hw, branch = self.chain(x, hw, [("conv", prefix + ".conv1", blk.conv1), ("bn", prefix + ".bn1", blk.bn1),
                                               ("relu", None, None), ("conv", prefix + ".conv2", blk.conv2),
                                               ("bn", prefix + ".bn2", blk.bn2), ("relu", None, None),
                                               ("conv", prefix + ".conv3", blk.conv3), ("bn", prefix + ".bn3", blk.bn3)])
        if blk.downsample is not None:
            ds = blk.downsample
            assert len(ds) == 2 and isinstance(ds[0], torch.nn.Conv2d) and isinstance(ds[1], torch.nn.BatchNorm2d)
            short, _, short_back = self.chain(x, hw, [("conv", prefix + ".downsample.0", ds[0]),
                                                      ("bn", prefix + ".downsample.1", ds[1])])
        else:
            short, short_back = x, (lambda gr: gr)
        y, _, relu_back = self.relu(g.op("Add", [y, short]), out_hw)

        def back(gr):
            gr = relu_back(gr)
            # the sum's adjoint: the same gradient into the bottleneck and into the shortcut, added at x
            return g.op("Add", [branch(gr), short_back(gr)])
        return y, out_hw, blk.conv3.out_channels, back

    def plain_layer(self, x, hw, c, p, mod):
        """Conv, BN, ReLU or max-pool (the layers DenseNet and VGG features share): (x, hw, c, back), else None."""
        if isinstance(mod, torch.nn.Conv2d):
            x, hw, b = self.conv(x, hw, p, mod)
            c = mod.out_channels
        elif isinstance(mod, torch.nn.BatchNorm2d):
            x, hw, b = self.bn(x, hw, p, mod)
        elif isinstance(mod, torch.nn.ReLU):
            x, hw, b = self.relu(x, hw)
        elif isinstance(mod, torch.nn.MaxPool2d):
            x, hw, b = self.maxpool(x, hw, mod, c)
        else:
            return None
        return x, hw, c, b

    def backbone(self, input_name, channels):
        """The feature map A and its backward; by family."""
        m = self.model
        x, hw, c = input_name, self.size, channels
        backs = []
        if m.family == "densenet":
            for name, mod in m.features.named_children():
                p = "features." + name
                step = self.plain_layer(x, hw, c, p, mod)
                if step is not None:
                    x, hw, c, b = step
                elif name.startswith("denseblock"):
                    x, hw, c, b = self.dense_block(x, hw, p, mod, c)
                elif name.startswith("transition"):
                    x, hw, b = self.chain(x, hw, [("bn", p + ".norm", mod.norm), ("relu", None, None),
                                                  ("conv", p + ".conv", mod.conv), ("avgpool", None, mod.pool)])
                    c = mod.conv.out_channels
                else:
                    raise ValueError("unexpected DenseNet feature module " + name)
                backs.append(b)
            # TwoHead.final_relu (torchvision's F.relu before the pool): A is its output
            x, hw, b = self.relu(x, hw)
            backs.append(b)
        elif m.family == "resnet":
            x, hw, b = self.chain(x, hw, [("conv", "conv1", m.conv1), ("bn", "bn1", m.bn1), ("relu", None, None)])
            backs.append(b)
            c = m.conv1.out_channels
            x, hw, b = self.maxpool(x, hw, m.maxpool, c)
            backs.append(b)
            for lname in ("layer1", "layer2", "layer3", "layer4"):
                for bname, blk in getattr(m, lname).named_children():
                    if not isinstance(blk, torchvision.models.resnet.Bottleneck):
                        raise ValueError("%s.%s: only torchvision Bottleneck blocks (ResNet-50/101/152)" % (lname, bname))
                    x, hw, c, b = self.bottleneck(x, hw, "%s.%s" % (lname, bname), blk)
                    backs.append(b)
        else:
            for name, mod in m.features.named_children():
                step = self.plain_layer(x, hw, c, "features." + name, mod)
                if step is None:
                    raise ValueError("unexpected VGG feature module %s (%s)" % (name, type(mod).__name__))
                x, hw, c, b = step
                backs.append(b)

        def back(gr):
            for b in reversed(backs):
                gr = b(gr)
            return gr
        return x, hw, c, back

    def head(self, a, hw, c):
        """Forward logits from A, and the seed d logit_c / d A [K, C, hw, hw] for the requested classes."""
        g, m = self.g, self.model
        layers = cxr_models.head_layers(m)
        if m.pool == "avg":
            x = g.op("Flatten", [g.op("GlobalAveragePool", [a])], axis=1)
        else:
            x = g.op("Flatten", [a], axis=1)
        masks = []
        for layer in layers:
            x = g.op("Gemm", [x, g.weight(layer["weight"]), g.weight(layer["bias"])], transB=1)
            if layer["activation"] == "relu":
                masks.append(g.op("Cast", [g.op("Greater", [x, g.const(0.0)])], to=TensorProto.FLOAT))
                x = g.op("Relu", [x])
        g.op("Identity", [x])
        g.nodes[-1].output[0] = "logits"
        # seed: row c of the last layer, then back through the hidden layers (guided rule at their ReLUs too)
        gr = g.op("Gather", [g.weight(layers[-1]["weight"]), "classes"], axis=0)
        for layer, mask in zip(reversed(layers[:-1]), reversed(masks)):
            gr = g.op("Mul", [g.op("Relu", [gr]) if self.guided else gr, mask])
            gr = g.op("MatMul", [gr, g.weight(layer["weight"])])
        if m.pool == "avg":
            gr = g.op("Mul", [gr, g.const(1.0 / (hw * hw))])
            return g.op("Expand", [g.op("Reshape", [gr, g.const([0, c, 1, 1], np.int64)]),
                                   g.const([1, 1, hw, hw], np.int64)])
        return g.op("Reshape", [gr, g.const([-1, c, hw, hw], np.int64)])

    def build(self, input_name, channels):
        a, hw, c, back = self.backbone(input_name, channels)
        gr = back(self.head(a, hw, c))
        self.g.op("Identity", [gr])
        self.g.nodes[-1].output[0] = "gradient"
        return hw, c


def build_graph(model, channels, size, input_name="input", guided=True):
    """The adjoint graph of a cxr_models.TwoHead (torchvision DenseNet, ResNet-50 or VGG; linear or MLP head)."""
    model = model.eval()
    labels = _labels(model)
    b = _Builder(model, size, guided)
    b.build(input_name, channels)
    g = b.g
    graph = helper.make_graph(
        g.nodes, "guided_backprop" if guided else "plain_backprop",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, channels, size, size]),
         helper.make_tensor_value_info("classes", TensorProto.INT64, ["K"])],
        [helper.make_tensor_value_info("gradient", TensorProto.FLOAT, ["K", channels, size, size]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, labels])],
        list(g.inits.values()))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cxr-gateway guided_backprop")
    m.ir_version = 8
    return m


def export(model, path, channels, size, input_name="input", guided=True, external_layout=None):
    """Writes the graph. external_layout (cxr_models.external_layout of model.onnx): the weights stay in
    the model's external data file, referenced at the same offsets, so the package holds them once."""
    m = build_graph(model, channels, size, input_name, guided)
    if external_layout:
        for t in m.graph.initializer:
            if t.name in external_layout:
                offset, length, location = external_layout[t.name]
                if len(t.raw_data) != length:
                    raise SystemExit("guided graph initializer %s is %d bytes, model.onnx holds %d"
                                     % (t.name, len(t.raw_data), length))
                t.ClearField("raw_data")
                t.data_location = TensorProto.EXTERNAL
                for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
                    e = t.external_data.add()
                    e.key, e.value = k, v
        onnx.save_model(m, path)
        onnx.checker.check_model(path)  # the external file must exist beside it here
    else:
        onnx.save_model(m, path)
        onnx.checker.check_model(path)
    return path


def manifest_entry(model, file="guided.onnx", input_name="input"):
    """The package manifest's guided field (schemas/model/manifest.schema.json)."""
    return {"file": file, "inputs": {"image": input_name, "classes": "classes"},
            "outputs": {"gradient": "gradient", "logits": "logits"},
            "classes": _labels(model), "rule": "guided-relu-all"}


def _labels(model):
    last = cxr_models.head_layers(model)[-1]["weight"]
    return int(model.state_dict()[last].shape[0])
